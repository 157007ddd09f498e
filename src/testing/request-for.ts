import type { RequestInfo } from '../lifecycle.js';

/** What a session manager is told about a request that carries session `id` (none when undefined). */
export function requestFor(
  id?: string,
  options: { cookieName?: string; ip?: string; ajax?: boolean; readOnly?: boolean } = {},
): RequestInfo {
  const { cookieName = 'ci_session', ip = '127.0.0.1', ajax = false, readOnly = false } = options;
  return {
    cookieHeader: id === undefined ? undefined : `${cookieName}=${id}`,
    ip,
    ajax,
    readOnly,
  };
}
