/**
 * Client of the admin API for the `bastion revoke|sessions|quarantine|release` commands: finds
 * the listener from `admin.listen` in the config file, authenticates with `admin.token` (the
 * same env/file reference the gateway reads) or a client certificate, and sends one request.
 */
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { userInfo, hostname } from 'node:os';
import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { resolveSecret } from '../identity/util.js';

export interface AdminClientOptions {
  config: string;
  /** PEM client certificate / key for an mTLS admin listener. */
  clientCert?: string;
  clientKey?: string;
  /** PEM CA of the admin server certificate (default: the admin.tls.cert file, for a self-signed one). */
  ca?: string;
}

export interface AdminResponse {
  status: number;
  body: Record<string, unknown>;
}

export type AdminCall = (method: string, path: string, body?: unknown) => Promise<AdminResponse>;

export function adminClient(o: AdminClientOptions): AdminCall {
  const loaded = loadConfigFile(o.config);
  const admin = (loaded.config as Config).admin;
  if (!admin) throw new Error(`${o.config} has no admin listener: add admin: {listen: {host: 127.0.0.1, port: 9091}} and restart the gateway`);
  const host = ['0.0.0.0', '::', ''].includes(admin.listen.host) ? '127.0.0.1' : admin.listen.host;
  const token = admin.token ? resolveSecret(admin.token, loaded.baseDir) : undefined;
  const tlsOpts = admin.tls
    ? {
        ca: readFileSync(o.ca ? resolve(o.ca) : resolve(loaded.baseDir, admin.tls.cert)),
        ...(o.clientCert ? { cert: readFileSync(resolve(o.clientCert)) } : {}),
        ...(o.clientKey ? { key: readFileSync(resolve(o.clientKey)) } : {}),
      }
    : undefined;
  let operator = 'cli';
  try {
    operator = `${userInfo().username}@${hostname()}`;
  } catch {
    /* no user name: keep 'cli' */
  }
  return (method, path, body) =>
    new Promise<AdminResponse>((done, fail) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const headers: Record<string, string | number> = { 'x-bastion-operator': operator };
      if (token) headers.authorization = `Bearer ${token}`;
      if (data !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(data);
      }
      const opts = { host, port: admin.listen.port, method, path, headers, timeout: 10_000 };
      const req = tlsOpts ? https.request({ ...opts, ...tlsOpts }) : http.request(opts);
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let parsed: Record<string, unknown>;
          try {
            parsed = JSON.parse(text) as Record<string, unknown>;
          } catch {
            parsed = { message: text.slice(0, 500) };
          }
          done({ status: res.statusCode ?? 0, body: parsed });
        });
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err: NodeJS.ErrnoException) =>
        fail(new Error(`cannot reach the admin API at ${tlsOpts ? 'https' : 'http'}://${host}:${admin.listen.port} (${err.code ?? err.message}): is the gateway running with this config?`)),
      );
      req.end(data);
    });
}

/** Print the answer; a non-2xx answer sets a failing exit code. */
export function report(r: AdminResponse, out: (s: string) => void, err: (s: string) => void): void {
  if (r.status >= 200 && r.status < 300) {
    out(`${JSON.stringify(r.body, null, 2)}\n`);
    return;
  }
  err(`bastion: the admin API answered ${r.status}: ${String(r.body.message ?? r.body.error ?? '')}\n`);
  process.exitCode = 1;
}
