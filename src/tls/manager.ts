/**
 * The HTTPS listener's TLS: server options (TLS 1.3 minimum by default, configurable ciphers,
 * optional or required client certificates verified against `clientCa`, CRL), reloading of the
 * certificate, key, CA and CRL when their files change (no restart: `setSecureContext`, and
 * fresh session-ticket keys so a revoked client cannot resume an old session), the HSTS header
 * value, and the verified client certificate of a connection.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { resolve } from 'node:path';
import { createSecureContext, type PeerCertificate, type SecureContextOptions, type Server as TlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import type { TlsConfig } from '../config/auth.js';

export interface TlsManagerOptions {
  /** Folder relative paths are resolved against (the config file's folder). */
  baseDir?: string;
  /** Watch the files and reload on change (default true). */
  watch?: boolean;
}

export interface TlsManager extends EventEmitter {
  /** Options for `https.createServer(options, handler)`. */
  readonly serverOptions: TlsOptions;
  /** The `Strict-Transport-Security` value to send on every HTTPS response, or undefined. */
  readonly hsts: string | undefined;
  /** Install reload-on-change and the client-certificate policy on the created server. */
  attach(server: TlsServer): void;
  /** Re-read the files now. Returns true when a new context was installed. Emits `reloaded` or `reloadFailed` (with an Error). */
  reload(): boolean;
  /** Stop watching files. */
  close(): void;
}

export function hstsHeaderValue(cfg: TlsConfig['hsts']): string | undefined {
  if (!cfg.enabled) return undefined;
  let v = `max-age=${cfg.maxAgeSeconds}`;
  if (cfg.includeSubDomains) v += '; includeSubDomains';
  if (cfg.preload) v += '; preload';
  return v;
}

/**
 * The client certificate of a request's connection, only when it was presented AND verified
 * against the client CA (and CRL). What server.ts puts in `ctx.http.peerCertificate`.
 */
export function verifiedClientCertificate(socket: TLSSocket): PeerCertificate | undefined {
  if (typeof socket.getPeerCertificate !== 'function' || !socket.authorized) return undefined;
  const c = socket.getPeerCertificate(false);
  if (!c || !c.raw || Object.keys(c).length === 0) return undefined;
  return c;
}

function contextOptions(cfg: TlsConfig, baseDir: string): { opts: SecureContextOptions; files: string[] } {
  const files: string[] = [];
  const read = (p: string): Buffer => {
    const f = resolve(baseDir, p);
    files.push(f);
    return readFileSync(f);
  };
  const opts: SecureContextOptions = {
    cert: read(cfg.cert),
    key: read(cfg.key),
    minVersion: cfg.minVersion,
  };
  if (cfg.clientCa) opts.ca = read(cfg.clientCa);
  if (cfg.crl) opts.crl = read(cfg.crl);
  if (cfg.ciphers) opts.ciphers = cfg.ciphers;
  return { opts, files };
}

class Manager extends EventEmitter implements TlsManager {
  readonly serverOptions: TlsOptions;
  readonly hsts: string | undefined;
  private server: TlsServer | undefined;
  private files: string[];
  private watching = false;
  private readonly listener = (cur: Stats, prev: Stats): void => {
    if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) this.reload();
  };

  constructor(
    private readonly cfg: TlsConfig,
    private readonly baseDir: string,
    private readonly watch: boolean,
  ) {
    super();
    const { opts, files } = contextOptions(cfg, baseDir);
    // Fails loudly at start-up on an unreadable or mismatched cert/key.
    createSecureContext(opts);
    this.files = files;
    const wantCert = cfg.requestClientCert || cfg.requireClientCert;
    this.serverOptions = {
      ...opts,
      requestCert: wantCert,
      // Optional mode accepts connections without a certificate; a certificate that fails
      // verification is still refused, by attach()'s secureConnection check.
      rejectUnauthorized: cfg.requireClientCert,
      honorCipherOrder: true,
    };
    this.hsts = hstsHeaderValue(cfg.hsts);
  }

  attach(server: TlsServer): void {
    this.server = server;
    server.on('secureConnection', (socket: TLSSocket) => {
      if (!socket.authorized && socket.authorizationError) {
        const c = socket.getPeerCertificate(false);
        // A presented certificate that failed verification (unknown CA, revoked, expired):
        // refuse the connection rather than treating the client as anonymous.
        if (c && Object.keys(c).length > 0) socket.destroy();
      }
    });
    if (this.watch) this.startWatching();
  }

  private startWatching(): void {
    if (this.watching) return;
    this.watching = true;
    for (const f of this.files) watchFile(f, { interval: this.cfg.reloadIntervalMs, persistent: false }, this.listener);
  }

  private stopWatching(): void {
    if (!this.watching) return;
    this.watching = false;
    for (const f of this.files) unwatchFile(f, this.listener);
  }

  reload(): boolean {
    let next: { opts: SecureContextOptions; files: string[] };
    try {
      next = contextOptions(this.cfg, this.baseDir);
      createSecureContext(next.opts); // validate before installing: a half-written file keeps the old context
    } catch (err) {
      this.emit('reloadFailed', new Error(`TLS reload failed, keeping the previous certificate: ${(err as Error).message}`));
      return false;
    }
    if (this.server) {
      this.server.setSecureContext(next.opts);
      // New ticket keys: sessions (and their verified client certificates) from before the
      // reload cannot be resumed, so a newly revoked certificate is checked again.
      this.server.setTicketKeys(randomBytes(48));
    }
    this.emit('reloaded');
    return true;
  }

  close(): void {
    this.stopWatching();
  }
}

export function createTlsManager(cfg: TlsConfig, options: TlsManagerOptions = {}): TlsManager {
  return new Manager(cfg, options.baseDir ?? process.cwd(), options.watch ?? true);
}
