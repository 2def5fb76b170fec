/**
 * The login and consent pages of the development authorization server. oidc-provider runs the
 * protocol; this file only renders the two prompts it asks for (`login`, `consent`) and hands
 * the person's answer back with `interactionFinished`.
 *
 * Every page: CSRF token (HMAC of the interaction id, checked in constant time), `Origin`
 * check on POST, `Content-Security-Policy: frame-ancestors 'none'` (no clickjacking of the
 * consent button), `Cache-Control: no-store`, and every value HTML-escaped.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { InteractionDetails } from 'oidc-provider';

export interface DevUser {
  /** The subject (`sub`) of this user's tokens. */
  id: string;
  /** Password for the login form. A user without one can only be logged in by auto-login or `bastion token`. */
  password?: string;
  roles?: string[];
  groups?: string[];
}

export interface InteractionOptions {
  provider: Provider;
  issuer: string;
  users: ReadonlyMap<string, DevUser>;
  csrfKey: string;
  /** User logged in (and consented for) automatically, for headless clients. */
  autoLogin?: string;
  /** The `bastion token` helper client: `login_hint` names the subject, consent is implied. */
  devClientId: string;
}

export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
  pragma: 'no-cache',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
};

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"'`=/]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function csrfToken(key: string, uid: string): string {
  return createHmac('sha256', key).update(`csrf:${uid}`).digest('base64url');
}

function sameSecret(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}

const MAX_FORM_BYTES = 8 * 1024;
const IDENTITY_SCOPES = new Set(['openid', 'offline_access', 'profile', 'email']);

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = String(req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') throw new HttpError(415, 'form posts must be application/x-www-form-urlencoded');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new HttpError(413, 'form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function page(res: ServerResponse, status: number, title: string, body: string): void {
  res.writeHead(status, PAGE_HEADERS);
  res.end(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}
code{background:#f2f2f2;padding:0 .25rem}button{padding:.5rem 1rem;margin-right:.5rem}label{display:block;margin:.5rem 0}
.warn{color:#8a5300}</style></head>
<body><h1>${escapeHtml(title)}</h1>
<p class="warn">mcp-bastion development authorization server: for local development only.</p>
${body}</body></html>`);
}

/** Scopes the consent prompt asks for, grouped by resource (the MCP mount). */
function requestedByResource(details: InteractionDetails): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const missing = (details.prompt.details.missingResourceScopes ?? {}) as Record<string, string[]>;
  for (const [resource, scopes] of Object.entries(missing)) out.set(resource, [...scopes]);
  // oidc-provider also lists the mount scopes here (they are in its `scopes` list so that
  // registration accepts them); only the identity ones are shown as such.
  const oidc = ((details.prompt.details.missingOIDCScope ?? []) as string[]).filter((sc) => IDENTITY_SCOPES.has(sc));
  if (oidc.length > 0) out.set('(your identity)', oidc);
  return out;
}

export function createInteractionHandler(opts: InteractionOptions) {
  const { provider, users } = opts;
  const issuerOrigin = new URL(opts.issuer).origin;

  async function grantConsent(details: InteractionDetails): Promise<string> {
    const accountId = details.session?.accountId;
    const clientId = String(details.params.client_id);
    if (!accountId) throw new HttpError(400, 'no logged-in user for this consent');
    const existing = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    const grant = existing ?? new provider.Grant({ accountId, clientId });
    const d = details.prompt.details;
    const missingOIDCScope = d.missingOIDCScope as string[] | undefined;
    const missingOIDCClaims = d.missingOIDCClaims as string[] | undefined;
    const missingResourceScopes = d.missingResourceScopes as Record<string, string[]> | undefined;
    if (missingOIDCScope?.length) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims?.length) grant.addOIDCClaims(missingOIDCClaims);
    for (const [resource, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(resource, scopes.join(' '));
    }
    return grant.save();
  }

  /** Who is logged in without a form: the auto-login user, or the `bastion token` subject. */
  function implicitUser(details: InteractionDetails): string | undefined {
    if (details.params.client_id === opts.devClientId) {
      const hint = details.params.login_hint;
      if (typeof hint === 'string' && users.has(hint)) return hint;
      return undefined;
    }
    return opts.autoLogin;
  }

  function isAutomatic(details: InteractionDetails): boolean {
    return details.params.client_id === opts.devClientId || opts.autoLogin !== undefined;
  }

  async function renderLogin(res: ServerResponse, details: InteractionDetails, error?: string): Promise<void> {
    const client = await provider.Client.find(String(details.params.client_id));
    const name = client?.clientName ?? String(details.params.client_id);
    page(
      res,
      error ? 401 : 200,
      'Sign in',
      `<p>Sign in to continue to <strong>${escapeHtml(name)}</strong>.</p>
${error ? `<p role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(details.uid)}/login" autocomplete="off">
<input type="hidden" name="csrf" value="${escapeHtml(csrfToken(opts.csrfKey, details.uid))}">
<label>User <input name="login" required></label>
<label>Password <input name="password" type="password" required></label>
<button type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${escapeHtml(details.uid)}/abort">
<input type="hidden" name="csrf" value="${escapeHtml(csrfToken(opts.csrfKey, details.uid))}">
<button type="submit">Cancel</button></form>`,
    );
  }

  async function renderConsent(res: ServerResponse, details: InteractionDetails): Promise<void> {
    const clientId = String(details.params.client_id);
    const client = await provider.Client.find(clientId);
    const redirectHost = URL.parse(String(details.params.redirect_uri ?? ''))?.host ?? '(unknown)';
    const groups = requestedByResource(details);
    const list = [...groups]
      .map(
        ([resource, scopes]) =>
          `<li><code>${escapeHtml(resource)}</code>: ${scopes.map((s) => `<code>${escapeHtml(s)}</code>`).join(' ') || '(no scopes)'}</li>`,
      )
      .join('\n');
    const csrf = escapeHtml(csrfToken(opts.csrfKey, details.uid));
    page(
      res,
      200,
      'Allow access?',
      `<p><strong>${escapeHtml(client?.clientName ?? clientId)}</strong>
(client id <code>${escapeHtml(clientId)}</code>) asks to act as <strong>${escapeHtml(details.session?.accountId ?? '')}</strong>.</p>
<p>After you answer you will be sent to <strong>${escapeHtml(redirectHost)}</strong>.</p>
<p>It asks for:</p><ul>${list || '<li>nothing new</li>'}</ul>
<form method="post" action="/interaction/${escapeHtml(details.uid)}/confirm">
<input type="hidden" name="csrf" value="${csrf}">
<button type="submit">Allow</button></form>
<form method="post" action="/interaction/${escapeHtml(details.uid)}/abort">
<input type="hidden" name="csrf" value="${csrf}">
<button type="submit">Deny</button></form>`,
    );
  }

  function checkPost(req: IncomingMessage, form: URLSearchParams, uid: string): void {
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== issuerOrigin) {
      throw new HttpError(403, 'cross-origin form post refused');
    }
    const sent = form.get('csrf') ?? '';
    if (!sameSecret(sent, csrfToken(opts.csrfKey, uid))) {
      throw new HttpError(403, 'missing or wrong CSRF token: reload the page and try again');
    }
  }

  return async function handleInteraction(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://x');
      const match = /^\/interaction\/([A-Za-z0-9_-]{1,128})(?:\/(login|confirm|abort))?$/.exec(url.pathname);
      if (!match) throw new HttpError(404, 'not found');
      const [, uid, action] = match as unknown as [string, string, string | undefined];
      const details = await provider.interactionDetails(req, res);
      if (details.uid !== uid) throw new HttpError(400, 'interaction mismatch: start the sign-in again');

      if (req.method === 'GET' && action === undefined) {
        if (details.prompt.name === 'login') {
          const user = implicitUser(details);
          if (user === undefined && details.params.client_id === opts.devClientId) {
            await provider.interactionFinished(
              req,
              res,
              { error: 'login_required', error_description: 'login_hint does not name a development user' },
              { mergeWithLastSubmission: false },
            );
            return;
          }
          if (user !== undefined) {
            await provider.interactionFinished(req, res, { login: { accountId: user } }, { mergeWithLastSubmission: false });
            return;
          }
          return await renderLogin(res, details);
        }
        if (details.prompt.name === 'consent') {
          if (isAutomatic(details)) {
            const grantId = await grantConsent(details);
            await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
            return;
          }
          return await renderConsent(res, details);
        }
        throw new HttpError(400, `unsupported prompt ${details.prompt.name}`);
      }

      if (req.method !== 'POST' || action === undefined) throw new HttpError(405, 'method not allowed');
      const form = await readForm(req);
      checkPost(req, form, uid);

      if (action === 'abort') {
        await provider.interactionFinished(
          req,
          res,
          { error: 'access_denied', error_description: 'the user refused the request' },
          { mergeWithLastSubmission: false },
        );
        return;
      }
      if (action === 'login') {
        if (details.prompt.name !== 'login') throw new HttpError(400, 'this sign-in step is already done');
        const user = users.get(form.get('login') ?? '');
        const password = form.get('password') ?? '';
        // Always run the comparison, so an unknown user and a wrong password take the same path.
        const ok = sameSecret(password, user?.password ?? '\u0000no-password') && user?.password !== undefined;
        if (!ok || !user) return await renderLogin(res, details, 'Unknown user or wrong password.');
        await provider.interactionFinished(req, res, { login: { accountId: user.id } }, { mergeWithLastSubmission: false });
        return;
      }
      // confirm
      if (details.prompt.name !== 'consent') throw new HttpError(400, 'nothing to consent to at this step');
      const grantId = await grantConsent(details);
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    } catch (err) {
      if (res.headersSent) {
        res.end();
        return;
      }
      const status = err instanceof HttpError ? err.status : 400;
      const message =
        err instanceof HttpError
          ? err.message
          : 'this sign-in request is unknown or has expired: start again from the application';
      page(res, status, 'Sign-in problem', `<p>${escapeHtml(message)}</p>`);
    }
  };
}
