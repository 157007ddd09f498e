/**
 * Where a response's Set-Cookie headers can be read from: a Fetch `Response` (fetch(), Hono's
 * `app.request()`, a Fetch handler), its `Headers`, anything with node-style `headers`
 * (`app.inject()`'s response, a supertest response, an `IncomingMessage`), or the values themselves
 * (`response.headers.getSetCookie()`, `manager.setCookies(session)`).
 */
export type SetCookieSource =
  | string
  | readonly string[]
  | Headers
  | { readonly headers: Headers | Readonly<Record<string, unknown>> }
  | null
  | undefined;

/** What a response told the client about its session cookie. */
export type SessionCookieChange =
  | { readonly kind: 'set'; readonly value: string }
  | { readonly kind: 'cleared' };

interface SetCookieHeaders {
  getSetCookie(): string[];
}

function isHeaders(value: unknown): value is SetCookieHeaders {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Partial<SetCookieHeaders>).getSetCookie === 'function'
  );
}

/**
 * Several Set-Cookie values joined by ", " (what `headers.get('set-cookie')` answers) split again;
 * the comma inside an `Expires` date is not followed by `name=`, so it does not split.
 */
function splitJoined(value: string): string[] {
  return value.split(/,\s*(?=[^;,=\s]+=)/);
}

function valuesOf(header: unknown): string[] {
  if (typeof header === 'string') return splitJoined(header);
  if (Array.isArray(header))
    return header.filter((item): item is string => typeof item === 'string');
  return [];
}

/** Every Set-Cookie value in `source`. */
export function setCookieValues(source: SetCookieSource): string[] {
  if (source === null || source === undefined) return [];
  if (typeof source === 'string') return splitJoined(source);
  if (Array.isArray(source)) return valuesOf(source);
  if (isHeaders(source)) return source.getSetCookie();
  const { headers } = source as { readonly headers: unknown };
  if (isHeaders(headers)) return headers.getSetCookie();
  if (typeof headers !== 'object' || headers === null) return [];
  // node's headers are lower-case; a hand-made record may not be.
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === 'set-cookie') return valuesOf(value);
  }
  return [];
}

/**
 * The last Set-Cookie for the cookie called `name` (as a browser applies them in order): its value,
 * or 'cleared' for a deletion (an empty value, `Max-Age` of 0 or less, or an `Expires` in the past).
 * Undefined when the response left that cookie alone.
 */
export function sessionCookieChange(
  values: readonly string[],
  name: string,
  nowMs: number,
): SessionCookieChange | undefined {
  let change: SessionCookieChange | undefined;
  for (const text of values) {
    const [pair = '', ...attributes] = text.split(';');
    const equals = pair.indexOf('=');
    if (equals === -1 || pair.slice(0, equals).trim() !== name) continue;
    let value = pair.slice(equals + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"'))
      value = value.slice(1, -1);
    change =
      value === '' || expired(attributes, nowMs) ? { kind: 'cleared' } : { kind: 'set', value };
  }
  return change;
}

function expired(attributes: readonly string[], nowMs: number): boolean {
  let expires: number | undefined;
  for (const attribute of attributes) {
    const equals = attribute.indexOf('=');
    if (equals === -1) continue;
    const key = attribute.slice(0, equals).trim().toLowerCase();
    const value = attribute.slice(equals + 1).trim();
    // Max-Age wins over Expires (RFC 6265 §5.3).
    if (key === 'max-age') return Number(value) <= 0;
    if (key === 'expires') expires = Date.parse(value);
  }
  return expires !== undefined && !Number.isNaN(expires) && expires <= nowMs;
}
