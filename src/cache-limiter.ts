/** PHP's session.cache_limiter values; false sends no cache headers. */
export type CacheLimiter = 'nocache' | 'private' | 'private_no_expire' | 'public' | false;

/** The date PHP sends as `Expires` when a page must not be cached. */
const PAST = 'Thu, 19 Nov 1981 08:52:00 GMT';

const NOCACHE: readonly (readonly [string, string])[] = [
  ['Expires', PAST],
  ['Cache-Control', 'no-store, no-cache, must-revalidate'],
  ['Pragma', 'no-cache'],
];

/**
 * The headers PHP's session_start() sends for `limiter` (checked against PHP 8.2), for a response
 * sent at `nowMs`. PHP's private, private_no_expire and public also send Last-Modified with the
 * PHP script's modification time; a Node route has no such file, so it is left out.
 */
export function cacheHeaders(
  limiter: CacheLimiter,
  expireMinutes: number,
  nowMs: number,
): readonly (readonly [string, string])[] {
  if (limiter === false) return [];
  if (limiter === 'nocache') return NOCACHE;
  const maxAge = expireMinutes * 60;
  if (limiter === 'private_no_expire') return [['Cache-Control', `private, max-age=${maxAge}`]];
  if (limiter === 'private')
    return [
      ['Expires', PAST],
      ['Cache-Control', `private, max-age=${maxAge}`],
    ];
  const expires = new Date(Math.floor(nowMs / 1000) * 1000 + maxAge * 1000).toUTCString();
  return [
    ['Expires', expires],
    ['Cache-Control', `public, max-age=${maxAge}`],
  ];
}
