export type SameSite = 'Lax' | 'Strict' | 'None';

/** The cookie settings of a manager: Secure may depend on the request ('auto'). */
export interface CookieSettings {
  readonly path: string;
  readonly domain: string;
  readonly secure: boolean | 'auto';
  readonly sameSite: SameSite;
}

/** The attributes a session cookie carries (validated by the config). */
export interface CookieAttributes {
  readonly path: string;
  readonly domain: string;
  readonly secure: boolean;
  readonly sameSite: SameSite;
}

/**
 * The value of the first cookie called `name` in a Cookie header, or undefined.
 * Percent-decoding is skipped on purpose: a valid session ID never needs it, and undecoded junk
 * simply fails ID validation.
 */
export function readCookie(
  header: string | readonly string[] | undefined,
  name: string,
): string | undefined {
  if (header === undefined) return undefined;
  const text = typeof header === 'string' ? header : header.join('; ');
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf(';', start);
    if (end === -1) end = text.length;
    const equals = text.indexOf('=', start);
    if (equals !== -1 && equals < end) {
      const key = text.slice(start, equals).trim();
      if (key === name) {
        let value = text.slice(equals + 1, end).trim();
        if (value.length >= 2 && value.startsWith('"') && value.endsWith('"'))
          value = value.slice(1, -1);
        return value;
      }
    }
    start = end + 1;
  }
  return undefined;
}

function attributes(options: CookieAttributes): string {
  let text = `; Path=${options.path}`;
  if (options.domain !== '') text += `; Domain=${options.domain}`;
  if (options.secure) text += '; Secure';
  return `${text}; HttpOnly; SameSite=${options.sameSite}`;
}

/** `name=id; Max-Age=…; Expires=…; Path=…; [Domain=…;] [Secure;] HttpOnly; SameSite=…` */
export function sessionCookie(
  name: string,
  id: string,
  expirationSeconds: number,
  nowMs: number,
  options: CookieAttributes,
): string {
  let text = `${name}=${id}`;
  if (expirationSeconds > 0) {
    const expires = new Date(Math.floor(nowMs / 1000) * 1000 + expirationSeconds * 1000);
    text += `; Max-Age=${expirationSeconds}; Expires=${expires.toUTCString()}`;
  }
  return text + attributes(options);
}

/** The cookie that makes the browser forget the session; same Path/Domain/Secure/SameSite. */
export function deletionCookie(name: string, options: CookieAttributes): string {
  return `${name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT${attributes(options)}`;
}
