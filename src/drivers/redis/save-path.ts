import { SessionConfigError } from '../../errors.js';

/** Where a Redis server listens. */
export type RedisServerAddress =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number; readonly tls: boolean }
  | { readonly kind: 'unix'; readonly path: string };

/** A parsed Redis `savePath` (CodeIgniter's format, plus `redis://` and `rediss://` URLs). */
export interface RedisSavePath {
  /** Null for the query-only form (`?prefix=…`), allowed only next to an injected client. */
  readonly server: RedisServerAddress | null;
  readonly username: string | null;
  readonly password: string | null;
  readonly database: number;
  /** Connect timeout in seconds; 0 when not given. */
  readonly timeoutSeconds: number;
  /** `persistent=` as given (null when absent); a Node client is always long-lived, so it changes nothing. */
  readonly persistent: boolean | null;
  /** Replaces the whole key prefix when set. */
  readonly prefix: string | null;
}

export const ACCEPTED_FORMS =
  'tcp://host:port, tls://host:port, redis://[user:password@]host:port[/database], ' +
  'rediss://[user:password@]host:port[/database], unix:///path/to/redis.sock, /path/to/redis.sock or host:port, ' +
  'each optionally followed by ?auth=password (or auth[user]=…&auth[pass]=… for an ACL user), ' +
  'database=N, timeout=seconds, prefix=…, persistent=0|1';

const DEFAULT_PORT = 6379;
const QUERY_NAMES = [
  'auth',
  'auth[user]',
  'auth[pass]',
  'database',
  'timeout',
  'prefix',
  'persistent',
] as const;
const TRUE_WORDS = new Set(['1', 'true', 'on', 'yes']);
const FALSE_WORDS = new Set(['0', 'false', 'off', 'no', '']);

/** Hides passwords before a save path goes into an error message or a log. */
export function redactSavePath(savePath: string): string {
  return savePath
    .replace(/(auth(?:\[pass\]|%5Bpass%5D)?=)[^&]*/gi, '$1***')
    .replace(/^(rediss?:\/\/)([^/?#@]*)@/i, (_match, scheme: string, userInfo: string) => {
      const colon = userInfo.indexOf(':');
      return `${scheme}${colon === -1 ? '' : userInfo.slice(0, colon + 1)}***@`;
    });
}

function invalid(option: string, savePath: string, reason: string): SessionConfigError {
  return new SessionConfigError(
    option,
    `Invalid Redis save path format: "${redactSavePath(savePath)}" (${reason}). Accepted forms: ${ACCEPTED_FORMS}.`,
  );
}

interface QueryOptions {
  username: string | null;
  password: string | null;
  database: number | null;
  timeoutSeconds: number;
  persistent: boolean | null;
  prefix: string | null;
}

function parseQuery(query: string, fail: (reason: string) => SessionConfigError): QueryOptions {
  const values = new Map<string, string>();
  if (query !== '') {
    for (const part of query.split('&')) {
      if (part === '') continue;
      const equals = part.indexOf('=');
      const rawName = equals === -1 ? part : part.slice(0, equals);
      const rawValue = equals === -1 ? '' : part.slice(equals + 1);
      let name: string;
      let value: string;
      try {
        name = decodeURIComponent(rawName.replace(/\+/g, ' '));
        value = decodeURIComponent(rawValue.replace(/\+/g, ' '));
      } catch {
        throw fail(`"${rawName}" has a broken %-escape`);
      }
      if (!(QUERY_NAMES as readonly string[]).includes(name)) {
        throw fail(`unknown parameter "${name}"; the parameters are ${QUERY_NAMES.join(', ')}`);
      }
      if (values.has(name)) throw fail(`"${name}" is given twice`);
      values.set(name, value);
    }
  }
  const auth = values.get('auth');
  const authUser = values.get('auth[user]');
  const authPass = values.get('auth[pass]');
  if (auth !== undefined && (authUser !== undefined || authPass !== undefined)) {
    throw fail('give either auth=password or auth[user]=…&auth[pass]=…, not both');
  }
  if (auth === '') throw fail('auth= is empty');
  if (authUser !== undefined && (authPass === undefined || authPass === '')) {
    throw fail('auth[user] needs auth[pass]');
  }
  if (authPass === '') throw fail('auth[pass]= is empty');
  if (authUser === '') throw fail('auth[user]= is empty');

  const databaseText = values.get('database');
  let database: number | null = null;
  if (databaseText !== undefined) {
    if (!/^\d{1,5}$/.test(databaseText)) {
      throw fail(`database must be a whole number such as 0 or 2, got "${databaseText}"`);
    }
    database = Number(databaseText);
  }
  const timeoutText = values.get('timeout');
  let timeoutSeconds = 0;
  if (timeoutText !== undefined) {
    if (!/^\d+(\.\d+)?$/.test(timeoutText)) {
      throw fail(`timeout must be seconds such as 2 or 2.5, got "${timeoutText}"`);
    }
    timeoutSeconds = Number(timeoutText);
  }
  const persistentText = values.get('persistent');
  let persistent: boolean | null = null;
  if (persistentText !== undefined) {
    const word = persistentText.toLowerCase();
    if (TRUE_WORDS.has(word)) persistent = true;
    else if (FALSE_WORDS.has(word)) persistent = false;
    else
      throw fail(
        `persistent must be 1, 0, true, false, on, off, yes or no, got "${persistentText}"`,
      );
  }
  const prefix = values.get('prefix') ?? null;
  if (prefix === '') throw fail('prefix= is empty; leave it out to use the default prefix');
  if (prefix?.includes('{}')) {
    throw fail('prefix must not contain "{}", which breaks Redis Cluster hash tags');
  }
  return {
    username: authUser ?? null,
    password: auth ?? authPass ?? null,
    database,
    timeoutSeconds,
    persistent,
    prefix,
  };
}

function parsePort(text: string, fail: (reason: string) => SessionConfigError): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65_535) {
    throw fail(`the port must be a number from 1 to 65535, got "${text}"`);
  }
  return Number(text);
}

/** host, host:port, [v6], [v6]:port → host and port (the default port when absent and allowed). */
function parseHostPort(
  authority: string,
  portRequired: boolean,
  fail: (reason: string) => SessionConfigError,
): { host: string; port: number } {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]/@\s]+)(?::([^:]*))?$/.exec(authority);
  if (match === null) throw fail(`"${authority}" is not a host or host:port`);
  const [, rawHost = '', portText] = match;
  if (portText === undefined && portRequired) {
    throw fail(
      `"${authority}" has no port; write ${authority}:${DEFAULT_PORT} or tcp://${authority}`,
    );
  }
  const host = rawHost.startsWith('[') ? rawHost.slice(1, -1) : rawHost;
  return { host, port: portText === undefined ? DEFAULT_PORT : parsePort(portText, fail) };
}

function splitQuery(text: string): { head: string; query: string } {
  const mark = text.indexOf('?');
  return mark === -1
    ? { head: text, query: '' }
    : { head: text.slice(0, mark), query: text.slice(mark + 1) };
}

/**
 * Parses a Redis save path such as `tcp://10.0.0.5:6380?auth=secret&database=2&prefix=myapp:`.
 * `option` names the option the text came from, for the error. Throws SessionConfigError naming the
 * accepted forms when the text is malformed. `allowQueryOnly` accepts `?prefix=…` with no server,
 * for use next to an injected client.
 */
export function parseRedisSavePath(
  savePath: string,
  option = 'savePath',
  allowQueryOnly = false,
): RedisSavePath {
  const fail = (reason: string) => invalid(option, savePath, reason);
  if (savePath.trim() === '') {
    throw new SessionConfigError(
      option,
      `Session: No save path configured. The redis driver needs a server (${ACCEPTED_FORMS}) or a client in the connection option.`,
    );
  }
  if (/\s/.test(savePath)) throw fail('it contains whitespace');
  const { head, query } = splitQuery(savePath);
  let server: RedisServerAddress | null;
  let username: string | null = null;
  let password: string | null = null;
  let urlDatabase: number | null = null;

  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(head)?.[1]?.toLowerCase();
  if (head === '') {
    if (!allowQueryOnly) throw fail('it names no server');
    server = null;
  } else if (scheme === 'unix') {
    const path = head.slice('unix://'.length);
    if (!path.startsWith('/') || path.length < 2) {
      throw fail('a unix socket path must be absolute, as in unix:///run/redis.sock');
    }
    server = { kind: 'unix', path };
  } else if (scheme === 'tcp' || scheme === 'tls') {
    const rest = head.slice(scheme.length + 3);
    if (rest.includes('/')) throw fail(`a ${scheme}:// address has no path; use database= instead`);
    if (rest.includes('@')) throw fail(`put credentials in auth= for ${scheme}:// addresses`);
    const { host, port } = parseHostPort(rest, false, fail);
    server = { kind: 'tcp', host, port, tls: scheme === 'tls' };
  } else if (scheme === 'redis' || scheme === 'rediss') {
    const rest = head.slice(scheme.length + 3);
    const slash = rest.indexOf('/');
    const authorityWithUser = slash === -1 ? rest : rest.slice(0, slash);
    const databaseText = slash === -1 ? '' : rest.slice(slash + 1);
    const at = authorityWithUser.lastIndexOf('@');
    const authority = at === -1 ? authorityWithUser : authorityWithUser.slice(at + 1);
    if (at !== -1) {
      const userInfo = authorityWithUser.slice(0, at);
      const colon = userInfo.indexOf(':');
      try {
        const user = decodeURIComponent(colon === -1 ? '' : userInfo.slice(0, colon));
        const pass = decodeURIComponent(colon === -1 ? userInfo : userInfo.slice(colon + 1));
        username = user === '' ? null : user;
        password = pass === '' ? null : pass;
      } catch {
        throw fail('the user or password has a broken %-escape');
      }
    }
    if (databaseText !== '') {
      if (!/^\d{1,5}$/.test(databaseText)) {
        throw fail(`the path of a ${scheme}:// URL is the database number, got "/${databaseText}"`);
      }
      urlDatabase = Number(databaseText);
    }
    const { host, port } = parseHostPort(authority, false, fail);
    server = { kind: 'tcp', host, port, tls: scheme === 'rediss' };
  } else if (scheme !== undefined) {
    throw fail(`unknown scheme "${scheme}://"`);
  } else if (head.startsWith('/')) {
    server = { kind: 'unix', path: head };
  } else {
    const { host, port } = parseHostPort(head, true, fail);
    server = { kind: 'tcp', host, port, tls: false };
  }

  const options = parseQuery(query, fail);
  if ((username !== null || password !== null) && options.password !== null) {
    throw fail('the URL has credentials and auth= gives them again; keep one');
  }
  if (urlDatabase !== null && options.database !== null) {
    throw fail('the URL path and database= both give a database; keep one');
  }
  return {
    server,
    username: options.username ?? username,
    password: options.password ?? password,
    database: options.database ?? urlDatabase ?? 0,
    timeoutSeconds: options.timeoutSeconds,
    persistent: options.persistent,
    prefix: options.prefix,
  };
}
