import { createHash } from 'node:crypto';
import { SessionConfigError } from '../../errors.js';
import type { SessionKey } from '../contract.js';

/** The two items of one session. */
export interface ItemKeys {
  /** `<cookieName>:[<ip>:]{<id>}`: the braces mark the hash tag that keeps both on one server. */
  readonly data: string;
  /** `<data key>:lock`. */
  readonly lock: string;
}

/** memcached's key limit; longer keys are refused with CLIENT_ERROR. */
const MAX_KEY_BYTES = 250;
/** The longest IP text (an IPv4-mapped IPv6 address, 45 characters) and its colon. */
const LONGEST_IP_PART = 46;
const SESSION_ID_LENGTH = 32;
/** What an IP address's text is made of; anything else is named by its hash (see ipPart). */
const PLAIN_IP = /^[0-9A-Za-z:._-]{1,45}$/;

/**
 * The key prefix for `cookieName`, checked once: a cookie name so long that a session's keys could
 * exceed memcached's key limit is a configuration error, not a failure on some requests.
 */
export function keyPrefix(cookieName: string): string {
  const prefix = `${cookieName}:`;
  const longestLockKey = Buffer.byteLength(prefix) + LONGEST_IP_PART + SESSION_ID_LENGTH + 2 + 5;
  if (longestLockKey > MAX_KEY_BYTES) {
    throw new SessionConfigError(
      'cookieName',
      `it names the memcached keys, which would exceed memcached's ${MAX_KEY_BYTES}-byte key limit; use a shorter cookie name.`,
    );
  }
  return prefix;
}

export function itemKeys(prefix: string, key: SessionKey): ItemKeys {
  const data = `${prefix}${key.ip === null ? '' : `${ipPart(key.ip)}:`}{${key.id}}`;
  return { data, lock: `${data}:lock` };
}

/** CodeIgniter 4.1's MemcachedHandler key prefix, whatever the cookie name. */
export const CODEIGNITER_KEY_PREFIX = 'ci_session:';
/** What a memcached key may hold in the text protocol: no spaces, no control characters. */
const KEY_TEXT = /^[!-~]+$/;

/**
 * CodeIgniter's key prefix (`ci_session:` in 4.1, `ci_session:<cookieName>:` from 4.4), checked
 * once: it must be key text, and leave room for an address, an ID and `:lock` within the limit.
 */
export function codeIgniterKeyPrefix(prefix: string): string {
  const fits =
    typeof prefix === 'string' &&
    KEY_TEXT.test(prefix) &&
    prefix.length + LONGEST_IP_PART + SESSION_ID_LENGTH + ':lock'.length <= MAX_KEY_BYTES;
  if (!fits) {
    throw new SessionConfigError(
      'prefix',
      `CodeIgniter's memcached key prefix is printable ASCII without spaces, short enough for memcached's ${MAX_KEY_BYTES}-byte keys ('ci_session:' for CodeIgniter 4.1, 'ci_session:<cookieName>:' for 4.4 and later); got ${JSON.stringify(prefix)}.`,
    );
  }
  return prefix;
}

/**
 * CodeIgniter's MemcachedHandler items: `<prefix>[<ip>:]<id>` and the same with `:lock`. No hash
 * tag: PHP's client routes the whole key.
 */
export function codeIgniterItemKeys(prefix: string): (key: SessionKey) => ItemKeys {
  return (key) => {
    const data = `${prefix}${key.ip === null ? '' : `${ipPart(key.ip)}:`}${key.id}`;
    return { data, lock: `${data}:lock` };
  };
}

/**
 * An address as it is; anything else an adapter may pass for one (a forwarded header's text with
 * spaces or line breaks) as a hash, so it can neither break the text protocol nor the key limit.
 */
function ipPart(ip: string): string {
  return PLAIN_IP.test(ip) ? ip : `#${createHash('sha256').update(ip).digest('hex').slice(0, 40)}`;
}
