/**
 * `bastion token`'s engine: obtains an access token for a dev user from the running development
 * authorization server, through the ordinary authorization code + PKCE flow:
 * the pre-registered `bastion-cli` client pushes its request (PAR, authenticated) naming the
 * user in `login_hint` (the server logs that user in for this client only), and redeems the
 * code with private_key_jwt using the key kept in the state folder (0600). Whoever can read the state folder can mint dev tokens; nobody else.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { importJWK, SignJWT } from 'jose';
import { followAuthorizationRedirects } from './headless.js';
import type { DevClientFile } from './state.js';

export interface DevTokenRequest {
  client: DevClientFile;
  /** Overrides the issuer in the client file (e.g. from .bastion/dev.json). */
  issuer?: string;
  subject: string;
  /** Space-separated scopes. */
  scope: string;
  /** Resource indicator (mount URL) or the mount's short name. */
  mount: string;
  fetch?: typeof fetch;
}

export interface DevToken {
  accessToken: string;
  tokenType: string;
  expiresIn: number;
  /** Epoch seconds. */
  expiresAt: number;
  scope: string;
  resource: string;
}

export function resolveMount(client: DevClientFile, mount: string, extra: Record<string, string> = {}): string {
  const byName = client.resources.find((r) => r.name === mount);
  if (byName) return byName.resource;
  if (extra[mount]) return extra[mount];
  if (/^https?:\/\//i.test(mount)) return mount;
  const names = [...client.resources.map((r) => r.name), ...Object.keys(extra)];
  throw new Error(`unknown mount "${mount}": use a mount URL or one of ${names.join(', ') || '(none)'}`);
}

async function oauthError(res: Response, what: string): Promise<Error> {
  let detail = `${res.status}`;
  try {
    const body = (await res.json()) as { error?: string; error_description?: string };
    if (body.error) detail = `${body.error}${body.error_description ? `: ${body.error_description}` : ''}`;
  } catch {
    // not JSON: the status says enough
  }
  return new Error(`${what} failed (${detail})`);
}

export async function obtainDevToken(req: DevTokenRequest): Promise<DevToken> {
  const doFetch = req.fetch ?? fetch;
  const issuer = (req.issuer ?? req.client.issuer).replace(/\/$/, '');
  const resource = resolveMount(req.client, req.mount);
  const metaRes = await doFetch(`${issuer}/.well-known/oauth-authorization-server`);
  if (!metaRes.ok) {
    throw new Error(`cannot read the authorization server metadata at ${issuer} (${metaRes.status}): is \`bastion dev\` running?`);
  }
  const meta = (await metaRes.json()) as {
    authorization_endpoint: string;
    token_endpoint: string;
    pushed_authorization_request_endpoint: string;
    issuer: string;
  };

  const key = await importJWK(req.client.privateJwk, req.client.privateJwk.alg ?? 'ES256');
  const clientAssertion = async (): Promise<Record<string, string>> => {
    const now = Math.floor(Date.now() / 1000);
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: req.client.privateJwk.alg ?? 'ES256', kid: req.client.privateJwk.kid })
      .setIssuer(req.client.clientId)
      .setSubject(req.client.clientId)
      .setAudience(meta.issuer)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(key);
    return { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: jwt };
  };

  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(16).toString('base64url');
  // Pushed authorization request (RFC 9126): authenticated, so only the state-folder key
  // holder can start a login_hint sign-in for this client.
  const parRes = await doFetch(meta.pushed_authorization_request_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      client_id: req.client.clientId,
      response_type: 'code',
      redirect_uri: req.client.redirectUri,
      scope: req.scope,
      resource,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      login_hint: req.subject,
      ...(await clientAssertion()),
    }),
  });
  if (parRes.status !== 201) throw await oauthError(parRes, 'the pushed authorization request');
  const { request_uri: requestUri } = (await parRes.json()) as { request_uri: string };
  const authUrl = new URL(meta.authorization_endpoint);
  authUrl.search = new URLSearchParams({ client_id: req.client.clientId, request_uri: requestUri }).toString();

  const back = await followAuthorizationRedirects(authUrl, req.client.redirectUri, { fetch: doFetch });
  if (back.searchParams.get('state') !== state) throw new Error('the authorization response has the wrong state');
  const error = back.searchParams.get('error');
  if (error) {
    const hint = error === 'login_required' ? ` (is "${req.subject}" a dev user?)` : '';
    throw new Error(`authorization refused: ${error}${back.searchParams.get('error_description') ? `: ${back.searchParams.get('error_description')}` : ''}${hint}`);
  }
  const code = back.searchParams.get('code');
  if (!code) throw new Error('the authorization response has no code');

  const tokenRes = await doFetch(meta.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: req.client.redirectUri,
      code_verifier: verifier,
      resource,
      ...(await clientAssertion()),
    }),
  });
  if (!tokenRes.ok) throw await oauthError(tokenRes, 'the token request');
  const body = (await tokenRes.json()) as { access_token: string; token_type: string; expires_in: number; scope?: string };
  return {
    accessToken: body.access_token,
    tokenType: body.token_type,
    expiresIn: body.expires_in,
    expiresAt: Math.floor(Date.now() / 1000) + body.expires_in,
    scope: body.scope ?? '',
    resource,
  };
}
