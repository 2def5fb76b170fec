/**
 * A minimal token issuer for the auth rows: an ES256 key pair made at start, its public JWKS
 * served on 127.0.0.1 (GET /jwks.json), and access tokens minted locally with jose (RFC 9068
 * shape: typ at+jwt, aud = the mount's canonical resource). It runs inside the harness
 * process; it is not a process under test (the gateway fetches the JWKS once and caches it).
 * Tokens are handed to the load generator over IPC and never printed.
 */
import { createServer, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';

export interface BenchIssuer {
  issuer: string;
  jwksUri: string;
  mint(audience: string, scope?: string): Promise<string>;
  close(): Promise<void>;
}

export async function startIssuer(): Promise<BenchIssuer> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  const body = JSON.stringify({ keys: [jwk] });
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=600' });
      res.end(body);
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const issuer = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  return {
    issuer,
    jwksUri: `${issuer}/jwks.json`,
    mint: (audience, scope = 'mcp') =>
      new SignJWT({ scope, client_id: 'mcp-bastion-bench' })
        .setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' })
        .setIssuer(issuer)
        .setSubject('bench-user')
        .setAudience(audience)
        .setIssuedAt()
        .setJti(randomUUID())
        .setExpirationTime('2h')
        .sign(privateKey),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
