/**
 * Drives an authorization request without a browser: follows the authorization server's
 * redirects (keeping its cookies) until it redirects to the client's redirect_uri, and returns
 * that URL (with `code` and `state`, or `error`). Works with the development server's
 * auto-login; a login or consent page that needs a person stops it with a clear error.
 */

export interface FollowOptions {
  fetch?: typeof fetch;
  /** Redirects to follow at most (default 12). */
  maxHops?: number;
}

function sameEndpoint(location: URL, redirectUri: URL): boolean {
  return location.origin === redirectUri.origin && location.pathname === redirectUri.pathname;
}

export async function followAuthorizationRedirects(
  authorizationUrl: string | URL,
  redirectUri: string | URL,
  options: FollowOptions = {},
): Promise<URL> {
  const doFetch = options.fetch ?? fetch;
  const target = new URL(redirectUri);
  const jar = new Map<string, string>();
  let url = new URL(authorizationUrl);
  const authOrigin = url.origin;
  for (let hop = 0; hop < (options.maxHops ?? 12); hop++) {
    if (url.origin !== authOrigin) {
      throw new Error(`the authorization server redirected to another origin (${url.origin}) before reaching the redirect_uri`);
    }
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await doFetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair?.indexOf('=') ?? -1;
      if (!pair || eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') jar.delete(name);
      else jar.set(name, value);
    }
    const location = res.headers.get('location');
    await res.body?.cancel();
    if (res.status < 300 || res.status >= 400 || !location) {
      throw new Error(
        `the authorization server answered ${res.status} at ${url.pathname} instead of redirecting: ` +
          'it wants a person to sign in or consent. Start the development server with --auto-login USER ' +
          '(or BASTION_DEV_AUTO_LOGIN), or open the authorization URL in a browser.',
      );
    }
    const next = new URL(location, url);
    if (sameEndpoint(next, target)) return next;
    url = next;
  }
  throw new Error('too many redirects while following the authorization request');
}
