import type { CacheLimiter } from './cache-limiter.js';
import { type Clock, systemClock } from './clock.js';
import type { CookieSettings, SameSite } from './cookie.js';
import type { SessionDriver } from './drivers/contract.js';
import { DRIVER_NAMES, type DriverName, driverFromShorthand } from './drivers/shorthand.js';
import { SessionConfigError } from './errors.js';
import { MIN_SESSION_ID_BITS, SessionIdFormat, type SessionIdOptions } from './id.js';
import { defaultLogger, type SessionLogger } from './log.js';
import { PayloadCipher } from './payload-cipher.js';
import { StorageIds } from './storage-key.js';

export type { CacheLimiter } from './cache-limiter.js';
export type { SameSite } from './cookie.js';
export { DRIVER_NAMES, type DriverName } from './drivers/shorthand.js';

/** Payloads up to this size (bytes) are stored unless a driver or the maxPayloadBytes option says otherwise. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

export interface CookieOptions {
  path?: string;
  domain?: string;
  /**
   * true, false, or 'auto': Secure when the request arrived over HTTPS as the framework sees it
   * (Express `req.secure` with its trust proxy setting, Fastify `request.protocol` with
   * `trustProxy`, Koa `ctx.secure` with `app.proxy`, the URL's scheme on Hono and Fetch servers).
   */
  secure?: boolean | 'auto';
  /** Lax, Strict or None in any case; '' means Lax. None requires secure. */
  sameSite?: string;
}

/** The options of a session manager; CodeIgniter 4 names. */
export interface SessionConfig {
  /**
   * A driver from its factory (`redis({ client })` from 'keepsake/redis', your own…), or the
   * CodeIgniter-style shorthand: 'file' (default), 'database', 'redis', 'memcached' or 'array',
   * configured by `savePath` and `connection`.
   */
  driver?: DriverName | SessionDriver;
  cookieName?: string;
  /** Seconds of inactivity before the session expires; 0 = browser-session cookie. */
  expiration?: number;
  /** Server-side lifetime (seconds) when expiration is 0. */
  gcMaxLifetime?: number;
  /** With a driver name: its location (directory, table name, Redis URL, memcached server list). */
  savePath?: string;
  /** With a driver name: a live client or pool, or a connection URL (database, redis, memcached). */
  connection?: unknown;
  matchIP?: boolean;
  /** Seconds between automatic ID regenerations; 0 disables. */
  timeToUpdate?: number;
  regenerateDestroy?: boolean;
  /** Seconds the old ID keeps leading to the new session after an automatic regeneration. */
  regenerateGrace?: number;
  cookie?: CookieOptions;
  clock?: Clock;
  /** Milliseconds a request waits for a session lock before a 503. */
  lockWait?: number;
  /** Milliseconds a store-side lock lives unless renewed (bounds recovery after a crash). */
  lockTtl?: number;
  /** Milliseconds a store call may take before it counts as an outage. */
  ioTimeout?: number;
  /** GC runs on gcProbability out of gcDivisor session starts. */
  gcProbability?: number;
  gcDivisor?: number;
  /**
   * Seconds after its creation that a session ends however active it is (regeneration keeps the
   * creation time); the request after that starts a new, empty session. 0 (default): no limit.
   * 8–24 hours suits most sites; `expiration` stays the idle lifetime.
   */
  absoluteLifetime?: number;
  /**
   * Encrypts every stored session with AES-256-GCM, bound to its session ID. `keys`: 32 random
   * bytes each, as a Buffer or as base64/hex text (`openssl rand -base64 32`). The first key
   * encrypts, any key decrypts: to rotate, put a new key first; each session is re-encrypted with it
   * at its next request.
   */
  encryption?: { keys: readonly (string | Uint8Array)[] };
  /**
   * Stores each session under a keyed hash (HMAC-SHA-256) of its ID instead of the ID, so a dump of
   * the store holds no usable cookie value. `secret`: at least 32 bytes. Changing it ends every session.
   */
  hashIds?: { secret: string | Uint8Array };
  /** The largest session (serialized, in bytes) to store; a bigger one fails with SessionValueError. */
  maxPayloadBytes?: number;
  /**
   * Store a new session, and send its cookie, even when it holds no userdata — CodeIgniter's
   * behaviour. Off by default: a visitor who stores nothing (a crawler, a health check) gets no
   * cookie and leaves nothing in the store.
   */
  createEmptySessions?: boolean;
  /**
   * The cache headers of responses to requests that have a session, as PHP's
   * session.cache_limiter: 'nocache' (default, as CodeIgniter), 'private', 'private_no_expire',
   * 'public', or false for none. A Cache-Control the app sets itself wins.
   */
  cacheLimiter?: CacheLimiter;
  /**
   * An unchanged session's stored expiry is refreshed only once this fraction of its lifetime has
   * passed since its last write or touch (default 0.1: a 2-hour session is touched at most every
   * 12 minutes, so it may expire up to 12 minutes early, never late). 0 touches on every request.
   */
  touchAfter?: number;
  /** Minutes a 'private' or 'public' response may be cached (PHP's session.cache_expire); default 180. */
  cacheExpire?: number;
  logger?: SessionLogger;
  /**
   * The format of session IDs, as PHP's session.sid_length and session.sid_bits_per_character:
   * `{ length: 32, bitsPerCharacter: 5 }` for a CodeIgniter app on Debian's php.ini. Default: 32
   * hex characters. A cookie in another format is ignored.
   */
  sessionId?: SessionIdOptions;
}

export type ResolvedCookieOptions = CookieSettings;

const CACHE_LIMITERS: readonly CacheLimiter[] = [
  'nocache',
  'private',
  'private_no_expire',
  'public',
  false,
];

export interface ResolvedConfig {
  readonly driver: SessionDriver;
  readonly cookieName: string;
  readonly expiration: number;
  readonly gcMaxLifetime: number;
  readonly matchIP: boolean;
  readonly timeToUpdate: number;
  readonly regenerateDestroy: boolean;
  readonly regenerateGrace: number;
  readonly cookie: ResolvedCookieOptions;
  readonly clock: Clock;
  readonly lockWait: number;
  readonly lockTtl: number;
  readonly ioTimeout: number;
  readonly gcProbability: number;
  readonly gcDivisor: number;
  readonly maxPayloadBytes: number;
  readonly absoluteLifetime: number;
  /** Encrypts and decrypts payloads when the encryption option is set. */
  readonly cipher: PayloadCipher | undefined;
  /** Maps session IDs to store keys (hashed with the hashIds option). */
  readonly storageIds: StorageIds;
  readonly createEmptySessions: boolean;
  readonly cacheLimiter: CacheLimiter;
  readonly touchAfter: number;
  readonly cacheExpire: number;
  readonly logger: SessionLogger;
  readonly sessionId: SessionIdFormat;
}

const KNOWN_OPTIONS = new Set<string>([
  'driver',
  'cookieName',
  'expiration',
  'gcMaxLifetime',
  'savePath',
  'connection',
  'matchIP',
  'timeToUpdate',
  'regenerateDestroy',
  'regenerateGrace',
  'cookie',
  'clock',
  'lockWait',
  'lockTtl',
  'ioTimeout',
  'gcProbability',
  'gcDivisor',
  'maxPayloadBytes',
  'absoluteLifetime',
  'encryption',
  'hashIds',
  'createEmptySessions',
  'cacheLimiter',
  'touchAfter',
  'cacheExpire',
  'logger',
  'sessionId',
]);

/** Options that moved to a driver's factory, and where. */
const MOVED_OPTIONS: Record<string, string> = {
  maxSessions:
    "maxSessions is an option of the array driver now: driver: array({ maxSessions }) from 'keepsake/array'",
};

function integer(
  options: SessionConfig,
  name: keyof SessionConfig,
  fallback: number,
  min: number,
): number {
  const value = options[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new SessionConfigError(name, `expected a whole number ≥ ${min}, got ${describe(value)}.`);
  }
  return value;
}

function fraction(options: SessionConfig, name: keyof SessionConfig, fallback: number): number {
  const value = options[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= 0 && value < 1)) {
    throw new SessionConfigError(
      name,
      `expected a fraction from 0 to below 1, got ${describe(value)}.`,
    );
  }
  return value;
}

function boolean(options: SessionConfig, name: keyof SessionConfig, fallback: boolean): boolean {
  const value = options[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') {
    throw new SessionConfigError(name, `expected true or false, got ${describe(value)}.`);
  }
  return value;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

function resolveDriver(options: SessionConfig): SessionDriver {
  const { driver, savePath = '', connection } = options;
  if (typeof savePath !== 'string') {
    throw new SessionConfigError('savePath', `expected a string, got ${describe(savePath)}.`);
  }
  if (driver === undefined || typeof driver === 'string') {
    const name = driver ?? 'file';
    if (!(DRIVER_NAMES as readonly string[]).includes(name)) {
      throw new SessionConfigError(
        'driver',
        `unknown driver ${describe(name)}; use one of ${DRIVER_NAMES.join(', ')}, or a driver object such as redis({ client }) from 'keepsake/redis'.`,
      );
    }
    return driverFromShorthand(name as DriverName, savePath, connection);
  }
  if (
    typeof driver === 'object' &&
    driver !== null &&
    typeof driver.name === 'string' &&
    typeof driver.open === 'function'
  ) {
    if (savePath !== '' || connection !== undefined) {
      throw new SessionConfigError(
        savePath !== '' ? 'savePath' : 'connection',
        `it configures a driver given by name only; pass it to the ${driver.name} driver's factory instead.`,
      );
    }
    return driver;
  }
  throw new SessionConfigError(
    'driver',
    `expected a driver name (${DRIVER_NAMES.join(', ')}) or a driver object with a name and an open(context) method (see SessionDriver), got ${describe(driver)}.`,
  );
}

const COOKIE_OPTIONS = new Set(['path', 'domain', 'secure', 'sameSite']);

/** Why a cookie option is not one, and what to use instead. */
function unknownCookieOption(name: string): string {
  const lowered = name.toLowerCase();
  if (lowered === 'maxage' || lowered === 'expires') {
    return `unknown cookie option; the session's lifetime is keepsake's expiration option (seconds, CodeIgniter's sessionExpiration), which sets the cookie's Max-Age too.`;
  }
  if (lowered === 'httponly') {
    return 'unknown cookie option; the session cookie is always HttpOnly, so that no script on the page can read the session ID (it cannot be turned off).';
  }
  return `unknown cookie option; the cookie options are ${[...COOKIE_OPTIONS].join(', ')} (its lifetime is the expiration option, and HttpOnly is always on).`;
}

function resolveCookie(cookie: CookieOptions | undefined): ResolvedCookieOptions {
  if (cookie !== undefined && (typeof cookie !== 'object' || cookie === null)) {
    throw new SessionConfigError('cookie', `expected an object, got ${describe(cookie)}.`);
  }
  for (const name of Object.keys(cookie ?? {})) {
    if (!COOKIE_OPTIONS.has(name))
      throw new SessionConfigError(`cookie.${name}`, unknownCookieOption(name));
  }
  const path = cookie?.path ?? '/';
  const domain = cookie?.domain ?? '';
  const secure = cookie?.secure ?? false;
  const rawSameSite = cookie?.sameSite ?? 'Lax';
  if (typeof path !== 'string' || /[;\r\n\0]/.test(path)) {
    throw new SessionConfigError(
      'cookie.path',
      `expected a path without ";" or control characters, got ${describe(path)}.`,
    );
  }
  if (typeof domain !== 'string' || !/^[A-Za-z0-9.-]*$/.test(domain)) {
    throw new SessionConfigError(
      'cookie.domain',
      `expected a host name such as "example.com" (or '' for none), got ${describe(domain)}.`,
    );
  }
  if (typeof secure !== 'boolean' && secure !== 'auto') {
    throw new SessionConfigError(
      'cookie.secure',
      `expected true, false or 'auto' (Secure when the request came over HTTPS), got ${describe(secure)}.`,
    );
  }
  if (typeof rawSameSite !== 'string') {
    throw new SessionConfigError(
      'cookie.sameSite',
      `expected "Lax", "Strict", "None" or "", got ${describe(rawSameSite)}.`,
    );
  }
  const lowered = rawSameSite.toLowerCase();
  const sameSite: SameSite | undefined =
    lowered === '' || lowered === 'lax'
      ? 'Lax'
      : lowered === 'strict'
        ? 'Strict'
        : lowered === 'none'
          ? 'None'
          : undefined;
  if (sameSite === undefined) {
    throw new SessionConfigError(
      'cookie.sameSite',
      `The SameSite value must be None, Lax, Strict or a blank string, ${rawSameSite} given.`,
    );
  }
  if (sameSite === 'None' && secure !== true) {
    throw new SessionConfigError(
      'cookie.sameSite',
      'Using the "SameSite=None" attribute requires setting the "Secure" attribute (cookie.secure: true).',
    );
  }
  return { path: path === '' ? '/' : path, domain, secure, sameSite };
}

function resolveCacheLimiter(limiter: SessionConfig['cacheLimiter']): CacheLimiter {
  if (limiter === undefined) return 'nocache';
  if (CACHE_LIMITERS.includes(limiter)) return limiter;
  throw new SessionConfigError(
    'cacheLimiter',
    `expected 'nocache', 'private', 'private_no_expire', 'public' or false (PHP's session.cache_limiter), got ${describe(limiter)}.`,
  );
}

function resolveCipher(encryption: SessionConfig['encryption']): PayloadCipher | undefined {
  if (encryption === undefined) return undefined;
  if (typeof encryption !== 'object' || encryption === null || !('keys' in encryption)) {
    throw new SessionConfigError(
      'encryption',
      `expected { keys: [...] } (32-byte keys, the first one encrypting), got ${describe(encryption)}.`,
    );
  }
  return new PayloadCipher(encryption.keys);
}

function resolveStorageIds(hashIds: SessionConfig['hashIds']): StorageIds {
  if (hashIds === undefined) return new StorageIds();
  if (typeof hashIds !== 'object' || hashIds === null || hashIds.secret === undefined) {
    throw new SessionConfigError(
      'hashIds',
      `expected { secret } (at least 32 bytes), got ${describe(hashIds)}.`,
    );
  }
  return new StorageIds(hashIds.secret);
}

/** Validates every option and fills in the defaults; throws SessionConfigError naming the first bad option. */
export function resolveConfig(options: SessionConfig = {}): ResolvedConfig {
  if (typeof options !== 'object' || options === null) {
    throw new SessionConfigError(
      '(config)',
      `expected an options object, got ${describe(options)}.`,
    );
  }
  for (const name of Object.keys(options)) {
    const moved = MOVED_OPTIONS[name];
    if (moved !== undefined) throw new SessionConfigError(name, `${moved}.`);
    if (!KNOWN_OPTIONS.has(name)) {
      throw new SessionConfigError(
        name,
        `unknown option; the options are ${[...KNOWN_OPTIONS].join(', ')}.`,
      );
    }
  }
  const cookieName = options.cookieName ?? 'ci_session';
  if (
    typeof cookieName !== 'string' ||
    !/^[A-Za-z0-9_-]+$/.test(cookieName) ||
    /^[0-9]+$/.test(cookieName)
  ) {
    throw new SessionConfigError(
      'cookieName',
      `expected letters, digits, "_" or "-" (not only digits), got ${describe(cookieName)}.`,
    );
  }
  const clock = options.clock ?? systemClock;
  if (typeof clock !== 'function') {
    throw new SessionConfigError(
      'clock',
      'expected a function returning milliseconds since the epoch.',
    );
  }
  const logger = options.logger ?? defaultLogger;
  if (
    typeof logger !== 'object' ||
    logger === null ||
    typeof logger.debug !== 'function' ||
    typeof logger.warn !== 'function' ||
    typeof logger.error !== 'function'
  ) {
    throw new SessionConfigError(
      'logger',
      'expected an object with debug, warn and error functions.',
    );
  }
  const gcProbability = integer(options, 'gcProbability', 1, 0);
  const gcDivisor = integer(options, 'gcDivisor', 100, 1);
  if (gcProbability > gcDivisor) {
    throw new SessionConfigError('gcProbability', `must not exceed gcDivisor (${gcDivisor}).`);
  }
  const driver = resolveDriver(options);
  return {
    driver,
    cookieName,
    expiration: integer(options, 'expiration', 7200, 0),
    gcMaxLifetime: integer(options, 'gcMaxLifetime', 1440, 1),
    matchIP: boolean(options, 'matchIP', false),
    timeToUpdate: integer(options, 'timeToUpdate', 300, 0),
    regenerateDestroy: boolean(options, 'regenerateDestroy', false),
    regenerateGrace: integer(options, 'regenerateGrace', 30, 0),
    cookie: resolveCookie(options.cookie),
    clock,
    lockWait: integer(options, 'lockWait', 10_000, 0),
    lockTtl: integer(options, 'lockTtl', 5_000, 100),
    ioTimeout: integer(options, 'ioTimeout', 2_000, 1),
    gcProbability,
    gcDivisor,
    maxPayloadBytes: integer(
      options,
      'maxPayloadBytes',
      driver.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
      64,
    ),
    absoluteLifetime: integer(options, 'absoluteLifetime', 0, 0),
    cipher: resolveCipher(options.encryption),
    storageIds: resolveStorageIds(options.hashIds),
    createEmptySessions: boolean(options, 'createEmptySessions', false),
    cacheLimiter: resolveCacheLimiter(options.cacheLimiter),
    touchAfter: fraction(options, 'touchAfter', 0.1),
    cacheExpire: integer(options, 'cacheExpire', 180, 0),
    logger,
    sessionId: resolveSessionId(options.sessionId),
  };
}

/** The sessionId option (PHP's sid_length 22–256, sid_bits_per_character 4–6), ≥ 128 random bits. */
function resolveSessionId(option: SessionIdOptions | undefined): SessionIdFormat {
  if (option === undefined) return new SessionIdFormat();
  if (typeof option !== 'object' || option === null) {
    throw new SessionConfigError(
      'sessionId',
      `expected { length, bitsPerCharacter }, got ${describe(option)}.`,
    );
  }
  for (const name of Object.keys(option)) {
    if (name !== 'length' && name !== 'bitsPerCharacter') {
      throw new SessionConfigError(
        `sessionId.${name}`,
        'unknown option; the options are length (session.sid_length) and bitsPerCharacter (session.sid_bits_per_character).',
      );
    }
  }
  const { length = 32, bitsPerCharacter = 4 } = option;
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 22 || length > 256) {
    throw new SessionConfigError(
      'sessionId.length',
      `expected a whole number from 22 to 256 (PHP's session.sid_length), got ${describe(length)}.`,
    );
  }
  if (bitsPerCharacter !== 4 && bitsPerCharacter !== 5 && bitsPerCharacter !== 6) {
    throw new SessionConfigError(
      'sessionId.bitsPerCharacter',
      `expected 4, 5 or 6 (PHP's session.sid_bits_per_character), got ${describe(bitsPerCharacter)}.`,
    );
  }
  if (length * bitsPerCharacter < MIN_SESSION_ID_BITS) {
    throw new SessionConfigError(
      'sessionId.length',
      `${length} characters of ${bitsPerCharacter} bits hold ${length * bitsPerCharacter} random bits, fewer than the ${MIN_SESSION_ID_BITS} keepsake requires; use at least ${Math.ceil(MIN_SESSION_ID_BITS / bitsPerCharacter)} characters.`,
    );
  }
  return new SessionIdFormat(length, bitsPerCharacter);
}

/** Seconds the store keeps a session after its last write or touch. */
export function storeLifetime(config: ResolvedConfig): number {
  return config.expiration > 0 ? config.expiration : config.gcMaxLifetime;
}
