/**
 * HTTP sink URLs may carry credentials (user:password@, or a token in the query). Requests are
 * sent with the userinfo moved to a Basic Authorization header, and error messages name only
 * origin and path.
 */
export interface SinkUrl {
  /** URL to request (no userinfo). */
  url: string;
  /** origin + path, for messages and sink names. */
  shown: string;
  /** Authorization header from the userinfo, when there was one. */
  authorization: string | undefined;
}

export function sinkUrl(raw: string): SinkUrl {
  const u = new URL(raw);
  let authorization: string | undefined;
  if (u.username !== '' || u.password !== '') {
    authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
    u.username = '';
    u.password = '';
  }
  return { url: u.toString(), shown: `${u.origin}${u.pathname}`, authorization };
}

/** An error message with every form of the URL replaced by its shown form. */
export function safeMessage(err: unknown, forms: readonly string[], shown: string): string {
  let m = err instanceof Error ? err.message : String(err);
  for (const f of forms) if (f) m = m.split(f).join(shown);
  return m;
}
