import { type Clock, nowSeconds } from './clock.js';
import { searchDotted } from './dot.js';
import { SessionClosedError, SessionUnsupportedError } from './errors.js';
import { isPlainRecord, type Marker, type Markers, META_KEY, VARS_KEY } from './markers.js';
import { assertEntryFits, assertStorable } from './serializer.js';

/** Session data as an app sees it: any JSON-storable value (or Date) under string keys. */
export type SessionData = Record<string, unknown>;

/**
 * Your app's session shape, declared once by module augmentation:
 * `declare module 'keepsake' { interface SessionDataMap { count: number } }`. Every adapter's
 * session then types those keys (`get('count')` is `number | null`); other keys stay `unknown`.
 */
// biome-ignore lint/suspicious/noEmptyInterface: apps add their keys by declaration merging
export interface SessionDataMap {}

/** The default data shape of a Session: SessionData narrowed by SessionDataMap. */
export type AppSessionData = SessionDataMap & SessionData;

/** A Node-style callback of express-session's methods: `null` on success, else the error. */
export type SessionCallback = (error: Error | null) => void;

export type SessionState = 'open' | 'closed' | 'destroyed' | 'readOnly';

/** What the app chose to record about a session for sessionsOf() (bindUser()). */
export interface BindingDetails {
  readonly clientIp?: string;
  readonly userAgent?: string;
}

/** Who a session is bound to (bindUser()). */
export interface BoundUser {
  readonly userId: string;
  /** Names this session in `manager.sessionsOf(userId)`'s list and in `manager.revoke()`; not its ID. */
  readonly handle: string;
}

/** Internal state, kept under a symbol so that property access can serve userdata. */
export const INTERNAL = Symbol('keepsake.session');

/** The request's lifecycle, as the Session sees it: its data, ID and state, and the session-wide operations. */
export interface SessionInternals {
  readonly data: Map<string, unknown>;
  readonly id: string;
  readonly state: SessionState;
  readonly clock: Clock;
  /** The largest session to store (bytes); set() refuses a single value bigger than that. */
  readonly maxPayloadBytes?: number;
  regenerate(destroy: boolean): Promise<void>;
  setLifetime(seconds: number): void;
  bindUser(userId: string, details?: BindingDetails): void;
  boundUser(): BoundUser | null;
  destroy(): Promise<void>;
  close(): Promise<void>;
}

type Key<Data> = keyof Data & string;

function isContainer(value: unknown): value is Record<string, unknown> | unknown[] {
  return typeof value === 'object' && value !== null && !(value instanceof Date);
}

function keyList(keys: string | readonly string[]): readonly string[] {
  return typeof keys === 'string' ? [keys] : keys;
}

/**
 * The session of one request: CodeIgniter 4's Session API (with the CodeIgniter 3 names as aliases).
 * `session.foo` reads and `session.foo = 1` writes the userdata key `foo` when `foo` is not a method.
 */
export class Session<Data extends SessionData = AppSessionData> {
  declare readonly [INTERNAL]: SessionInternals;

  constructor(internals: SessionInternals) {
    Object.defineProperty(this, INTERNAL, { value: internals, enumerable: false });
    // biome-ignore lint/correctness/noConstructorReturn: the proxy gives CodeIgniter's magic property access
    return new Proxy<Session>(this as Session, propertyAccess) as this;
  }

  /** The current session ID. */
  get id(): string {
    return this[INTERNAL].id;
  }

  /** CodeIgniter's `$session->session_id`. */
  get session_id(): string {
    return this[INTERNAL].id;
  }

  /** A live view of the data, like PHP's `$_SESSION`: reading, assigning and deleting keys is get/set/remove. */
  get data(): Partial<Data> & SessionData {
    const view: SessionData = Object.create(null);
    return new Proxy(view, dataView(this as Session)) as Partial<Data> & SessionData;
  }

  // ── userdata ───────────────────────────────────────────────────────────────

  /**
   * With a key: its value (falsy values as they are) or null; when the key is absent, dot notation is
   * tried (`user.name`, `\.` escapes a dot, `*` matches every child). Without a key: all userdata
   * except `__ci_vars` and flash/temp keys.
   */
  get(): Partial<Data> & SessionData;
  get<K extends Key<Data>>(key: K): Data[K] | null;
  get(key: string): unknown;
  get(key?: string): unknown {
    const { data } = this[INTERNAL];
    if (key === undefined || key === '') {
      const hidden = new Set([VARS_KEY, ...Object.keys(markersOf(this[INTERNAL]) ?? {})]);
      const all: SessionData = {};
      for (const [name, value] of data) if (!hidden.has(name)) all[name] = value;
      return all;
    }
    const direct = data.get(key);
    if (direct !== undefined && direct !== null) return direct;
    return searchDotted(key, data);
  }

  /** `set(key, value)`, `set({k: v, …})`, or `set(['a', 'b'])` (each named key to null). */
  set<K extends Key<Data>>(key: K, value: Data[K] | null): void;
  set(values: Partial<Data>): void;
  set(keys: readonly Key<Data>[]): void;
  set(keyOrValues: string | readonly string[] | Partial<Data>, value: unknown = null): void {
    storeEntries(this[INTERNAL], keyOrValues, value);
  }

  /** Present and not null. */
  has(key: Key<Data> | (string & {})): boolean {
    const value = this[INTERNAL].data.get(key);
    return value !== undefined && value !== null;
  }

  /** Merges `values` into the object or array stored under `key`; a silent no-op for anything else. */
  push(key: Key<Data> | (string & {}), values: Record<string, unknown> | readonly unknown[]): void {
    assertWritable(this[INTERNAL], 'push session data');
    const current = this[INTERNAL].data.get(key);
    if (!isContainer(current)) return;
    let merged: unknown;
    if (Array.isArray(current)) {
      merged = [...current, ...(Array.isArray(values) ? values : Object.values(values))];
    } else {
      merged = { ...current, ...values };
    }
    checkValue(this[INTERNAL], key, merged);
    this[INTERNAL].data.set(key, merged);
  }

  /** Deletes keys; flash and temp markers stay as they are. */
  remove(keys: Key<Data> | readonly Key<Data>[] | (string & {}) | readonly string[]): void {
    assertWritable(this[INTERNAL], 'remove session data');
    for (const key of keyList(keys)) this[INTERNAL].data.delete(key);
  }

  // ── flashdata ──────────────────────────────────────────────────────────────

  /** Sets values that survive the next request only. */
  setFlashdata<K extends Key<Data>>(key: K, value: Data[K] | null): void;
  setFlashdata(values: Partial<Data>): void;
  setFlashdata(keyOrValues: string | Partial<Data>, value: unknown = null): void {
    storeEntries(this[INTERNAL], keyOrValues, value);
    const keys = typeof keyOrValues === 'string' ? [keyOrValues] : Object.keys(keyOrValues);
    this.markAsFlashdata(keys);
  }

  /** Marks existing non-null keys as flashdata; all or nothing. */
  markAsFlashdata(
    keys: Key<Data> | readonly Key<Data>[] | (string & {}) | readonly string[],
  ): boolean {
    assertWritable(this[INTERNAL], 'mark flashdata');
    const list = keyList(keys);
    if (!list.every((key) => this.has(key))) return false;
    const markers = { ...markersOf(this[INTERNAL]) };
    for (const key of list) markers[key] = 'new';
    setMarkersOf(this[INTERNAL], markers);
    return true;
  }

  /** With a key: its value if it is flashdata, else null. Without: every flash key and value. */
  getFlashdata(): Partial<Data> & SessionData;
  getFlashdata<K extends Key<Data>>(key: K): Data[K] | null;
  getFlashdata(key: string): unknown;
  getFlashdata(key?: string): unknown {
    return markedValues(this[INTERNAL], key, (marker) => typeof marker !== 'number');
  }

  /** Keeps flashdata for one more request (also turns a plain key into flashdata). */
  keepFlashdata(keys: Key<Data> | readonly Key<Data>[] | (string & {}) | readonly string[]): void {
    this.markAsFlashdata(keys);
  }

  /** Removes flash markers; the values stay as ordinary userdata. */
  unmarkFlashdata(
    keys: Key<Data> | readonly Key<Data>[] | (string & {}) | readonly string[],
  ): void {
    unmarkKeys(this[INTERNAL], keys, (marker) => typeof marker !== 'number');
  }

  getFlashKeys(): string[] {
    return Object.entries(markersOf(this[INTERNAL]) ?? {})
      .filter(([, marker]) => typeof marker !== 'number')
      .map(([key]) => key);
  }

  // ── tempdata ───────────────────────────────────────────────────────────────

  /** Sets values that expire `ttl` seconds from now (0 or omitted: 300). */
  setTempdata<K extends Key<Data>>(key: K, value: Data[K] | null, ttl?: number): void;
  setTempdata(values: Partial<Data>, value?: null, ttl?: number): void;
  setTempdata(keys: readonly Key<Data>[], value?: null, ttl?: number): void;
  setTempdata(
    keyOrValues: string | readonly string[] | Partial<Data>,
    value: unknown = null,
    ttl = 300,
  ): void {
    storeEntries(this[INTERNAL], keyOrValues, value);
    const keys =
      typeof keyOrValues === 'string'
        ? [keyOrValues]
        : Array.isArray(keyOrValues)
          ? (keyOrValues as readonly string[])
          : Object.keys(keyOrValues);
    this.markAsTempdata(keys, ttl);
  }

  /**
   * Marks existing keys (null values allowed) as tempdata: `(key, ttl)`, `([k1, k2], ttl)` or
   * `({k1: ttl1, k2: ttl2})`; all or nothing. A ttl of 0 means 300.
   */
  markAsTempdata(
    keys:
      | Key<Data>
      | readonly Key<Data>[]
      | (string & {})
      | readonly string[]
      | Record<string, number>,
    ttl = 300,
  ): boolean {
    assertWritable(this[INTERNAL], 'mark tempdata');
    const ttls: [string, number][] =
      typeof keys === 'string'
        ? [[keys, ttl]]
        : Array.isArray(keys)
          ? (keys as readonly string[]).map((key) => [key, ttl])
          : Object.entries(keys as Record<string, number>).map(([key, keyTtl]) => [
              key,
              typeof keyTtl === 'number' ? keyTtl : ttl,
            ]);
    const { data, clock } = this[INTERNAL];
    if (!ttls.every(([key]) => data.has(key))) return false;
    const now = nowSeconds(clock);
    const markers = { ...markersOf(this[INTERNAL]) };
    for (const [key, seconds] of ttls) {
      if (!Number.isFinite(seconds))
        throw new TypeError(`keepsake: the tempdata ttl for "${key}" must be a number of seconds.`);
      markers[key] = now + (seconds === 0 ? 300 : Math.trunc(seconds));
    }
    setMarkersOf(this[INTERNAL], markers);
    return true;
  }

  /** With a key: its value if it is tempdata, else null. Without: every temp key and value. */
  getTempdata(): Partial<Data> & SessionData;
  getTempdata<K extends Key<Data>>(key: K): Data[K] | null;
  getTempdata(key: string): unknown;
  getTempdata(key?: string): unknown {
    return markedValues(this[INTERNAL], key, (marker) => typeof marker === 'number');
  }

  /** Removes the temp marker and the value. */
  removeTempdata(key: Key<Data> | (string & {})): void {
    this.unmarkTempdata(key);
    this[INTERNAL].data.delete(key);
  }

  /** Removes temp markers; the values stay as ordinary userdata. */
  unmarkTempdata(keys: Key<Data> | readonly Key<Data>[] | (string & {}) | readonly string[]): void {
    unmarkKeys(this[INTERNAL], keys, (marker) => typeof marker === 'number');
  }

  getTempKeys(): string[] {
    return Object.entries(markersOf(this[INTERNAL]) ?? {})
      .filter(([, marker]) => typeof marker === 'number')
      .map(([key]) => key);
  }

  // ── session-wide ───────────────────────────────────────────────────────────

  /**
   * A new ID now; the data moves to it. With `destroy`, the old ID's data is deleted at once (use at login).
   *
   * With a callback (express-session's `regenerate(callback)`): a new, empty session under a new ID,
   * the old ID deleted at once, then `callback(null)` or `callback(error)`. The data is dropped even
   * when the regeneration fails, as express-session does, because its callers log users out with it.
   */
  regenerate(destroy?: boolean): Promise<void>;
  regenerate(callback: SessionCallback): void;
  regenerate(destroyOrCallback: boolean | SessionCallback = false): Promise<void> | void {
    const internals = this[INTERNAL];
    if (typeof destroyOrCallback !== 'function') return internals.regenerate(destroyOrCallback);
    if (internals.state === 'open') internals.data.clear();
    settle(() => internals.regenerate(true), destroyOrCallback);
  }

  /**
   * This session's own idle lifetime in seconds, from now on and across requests: the store keeps
   * it that long after its last request, and its cookie's Max-Age follows ("remember me"). 0 makes
   * it a browser session (the cookie ends when the browser closes). Other sessions keep the
   * `expiration` option.
   */
  setLifetime(seconds: number): void {
    this[INTERNAL].setLifetime(seconds);
  }

  /**
   * Binds this session to a user, so that `manager.sessionsOf(userId)` lists it and
   * `manager.revokeAll(userId)` ends it ("log out everywhere"). Call it at login, next to
   * `regenerate(true)`. The binding lasts across requests and regenerations; `destroy()` removes it.
   * `details` (`clientIp`, `userAgent`) are recorded for sessionsOf() when given: the app decides
   * what it stores about its users. Binding to another user moves the session to that user.
   */
  bindUser(userId: string, details?: BindingDetails): void {
    this[INTERNAL].bindUser(userId, details);
  }

  /** The user this session is bound to, and its handle in sessionsOf()'s list; null when unbound. */
  boundUser(): BoundUser | null {
    return this[INTERNAL].boundUser();
  }

  /**
   * Deletes the stored session and sends the deletion cookie; later changes in this request throw.
   * With a callback (express-session's `destroy(callback)`): `callback(null)` or `callback(error)` after it.
   */
  destroy(): Promise<void>;
  destroy(callback: SessionCallback): void;
  destroy(callback?: SessionCallback): Promise<void> | void {
    const internals = this[INTERNAL];
    if (typeof callback !== 'function') return internals.destroy();
    settle(() => internals.destroy(), callback);
  }

  /** Saves now and releases the lock (PHP's session_write_close); later changes in this request throw. */
  close(): Promise<void> {
    return this[INTERNAL].close();
  }

  /** @deprecated CodeIgniter 4's old name for destroy(). */
  stop(): Promise<void> {
    return this.destroy();
  }

  // ── express-session's names ────────────────────────────────────────────────

  /**
   * express-session's `save()`: nothing to do now, so it resolves (or calls `callback(null)`).
   * keepsake writes the session once, before the response is sent — a redirect's next request
   * sees it — or at `close()`, which also releases the lock. Nothing can be left unsaved: a change
   * that could no longer be saved (after close() or destroy()) throws when it is made.
   */
  save(): Promise<void>;
  save(callback: SessionCallback): void;
  save(callback?: SessionCallback): Promise<void> | void {
    if (typeof callback !== 'function') return Promise.resolve();
    settle(() => Promise.resolve(), callback);
  }

  /**
   * express-session's `reload()`, which keepsake's lock makes meaningless: throws
   * SessionUnsupportedError, or passes it to `callback`.
   */
  reload(callback?: SessionCallback): void {
    const error = new SessionUnsupportedError(
      'reload',
      'keepsake locks the session for the whole request, so no other request can change it meanwhile, ' +
        "and the session already holds the stored data plus this request's own changes",
      "Remove the call. To let other requests see this request's changes before it ends, call " +
        '`await session.close()` (it saves and releases the lock); a route that polls the session ' +
        'without waiting for the lock can be marked with the readOnly option.',
    );
    if (typeof callback !== 'function') throw error;
    settle(() => Promise.reject(error), callback);
  }

  /** express-session's `touch()`: nothing to do, as keepsake refreshes the expiry at the end of every request. */
  touch(): this {
    return this;
  }

  // ── CodeIgniter 3 names ────────────────────────────────────────────────────

  userdata(key?: string): unknown {
    return key === undefined ? this.get() : this.get(key);
  }
  all_userdata(): SessionData {
    return this.get();
  }
  set_userdata(keyOrValues: string | readonly string[] | SessionData, value: unknown = null): void {
    this.set(keyOrValues as never, value as never);
  }
  unset_userdata(keys: string | readonly string[]): void {
    this.remove(keys);
  }
  has_userdata(key: string): boolean {
    return this.has(key);
  }
  mark_as_flash(keys: string | readonly string[]): boolean {
    return this.markAsFlashdata(keys);
  }
  set_flashdata(keyOrValues: string | SessionData, value: unknown = null): void {
    this.setFlashdata(keyOrValues as never, value as never);
  }
  flashdata(key?: string): unknown {
    return key === undefined ? this.getFlashdata() : this.getFlashdata(key);
  }
  keep_flashdata(keys: string | readonly string[]): void {
    this.keepFlashdata(keys);
  }
  unmark_flash(keys: string | readonly string[]): void {
    this.unmarkFlashdata(keys);
  }
  get_flash_keys(): string[] {
    return this.getFlashKeys();
  }
  mark_as_temp(keys: string | readonly string[] | Record<string, number>, ttl = 300): boolean {
    return this.markAsTempdata(keys, ttl);
  }
  set_tempdata(
    keyOrValues: string | readonly string[] | SessionData,
    value: unknown = null,
    ttl = 300,
  ): void {
    this.setTempdata(keyOrValues as never, value as never, ttl);
  }
  tempdata(key?: string): unknown {
    return key === undefined ? this.getTempdata() : this.getTempdata(key);
  }
  unset_tempdata(key: string): void {
    this.removeTempdata(key);
  }
  unmark_temp(keys: string | readonly string[]): void {
    this.unmarkTempdata(keys);
  }
  get_temp_keys(): string[] {
    return this.getTempKeys();
  }
  sess_regenerate(destroy = false): Promise<void> {
    return this.regenerate(destroy);
  }
  sess_destroy(): Promise<void> {
    return this.destroy();
  }
}

// ── internals: plain functions, because private class members do not work through the Proxy ──

/**
 * Runs `operation` and reports its outcome to a Node-style callback, once, from a fresh microtask:
 * an exception thrown by the callback is then an uncaught exception (as with express-session's
 * stores), never a rejection nobody sees, and never a second call of the callback.
 */
function settle(operation: () => Promise<void>, callback: SessionCallback): void {
  void new Promise<void>((resolve) => resolve(operation())).then(
    () => queueMicrotask(() => callback(null)),
    (error: unknown) =>
      queueMicrotask(() => callback(error instanceof Error ? error : new Error(String(error)))),
  );
}

function assertWritable(internals: SessionInternals, operation: string): void {
  if (internals.state !== 'open') throw new SessionClosedError(internals.state, operation);
}

function entriesOf(keyOrValues: unknown, value: unknown): [string, unknown][] {
  if (typeof keyOrValues === 'string') return [[keyOrValues, value]];
  if (Array.isArray(keyOrValues)) {
    return keyOrValues.map((key) => {
      if (typeof key !== 'string')
        throw new TypeError('keepsake: set([...]) takes a list of key names (strings).');
      return [key, null];
    });
  }
  if (isPlainRecord(keyOrValues)) return Object.entries(keyOrValues);
  throw new TypeError(
    'keepsake: set() takes a key and a value, an object of keys and values, or a list of keys.',
  );
}

/** Validates every value first, so a rejected value leaves the session unchanged. */
function storeEntries(internals: SessionInternals, keyOrValues: unknown, value: unknown): void {
  assertWritable(internals, 'set session data');
  const entries = entriesOf(keyOrValues, value);
  for (const [key, item] of entries) {
    // Plain objects (the stored record, get()'s result) would turn it into their prototype and lose it.
    if (key === '__proto__')
      throw new TypeError('keepsake: "__proto__" cannot be a session key; choose another name.');
    if (key === META_KEY)
      throw new TypeError(
        `keepsake: "${META_KEY}" is keepsake's own session key; choose another name.`,
      );
    checkValue(internals, key, item);
  }
  for (const [key, item] of entries) internals.data.set(key, item === undefined ? null : item);
}

/** A storable value, not bigger on its own than the whole session may be. */
function checkValue(internals: SessionInternals, key: string, value: unknown): void {
  const holdsDates = assertStorable(key, value);
  const limit = internals.maxPayloadBytes;
  if (limit !== undefined) assertEntryFits(key, value, holdsDates, limit);
}

function markersOf(internals: SessionInternals): Markers | undefined {
  const markers = internals.data.get(VARS_KEY);
  return isPlainRecord(markers) ? (markers as Markers) : undefined;
}

function setMarkersOf(internals: SessionInternals, markers: Markers): void {
  if (Object.keys(markers).length === 0) internals.data.delete(VARS_KEY);
  else internals.data.set(VARS_KEY, markers);
}

function markedValues(
  internals: SessionInternals,
  key: string | undefined,
  isKind: (marker: Marker) => boolean,
): unknown {
  const markers = markersOf(internals) ?? {};
  const { data } = internals;
  if (key !== undefined) {
    // Own keys only: a key named `toString` must not find Object.prototype's method as its marker.
    const marker = Object.hasOwn(markers, key) ? markers[key] : undefined;
    return marker !== undefined && isKind(marker) ? (data.get(key) ?? null) : null;
  }
  const found: SessionData = {};
  for (const [name, marker] of Object.entries(markers)) {
    if (isKind(marker) && data.has(name)) found[name] = data.get(name);
  }
  return found;
}

function unmarkKeys(
  internals: SessionInternals,
  keys: string | readonly string[],
  isKind: (marker: Marker) => boolean,
): void {
  assertWritable(internals, 'unmark session data');
  const current = markersOf(internals);
  if (current === undefined) return;
  const markers = { ...current };
  for (const key of keyList(keys)) {
    const marker = markers[key];
    if (marker !== undefined && isKind(marker)) delete markers[key];
  }
  setMarkersOf(internals, markers);
}

const propertyAccess: ProxyHandler<Session> = {
  get(target, property, receiver) {
    if (typeof property === 'symbol' || property in target)
      return Reflect.get(target, property, receiver);
    return target[INTERNAL].data.get(property) ?? null;
  },
  set(target, property, value, receiver) {
    if (typeof property === 'symbol' || property in target)
      return Reflect.set(target, property, value, receiver);
    (receiver as Session).set(property, value);
    return true;
  },
  has(target, property) {
    if (typeof property === 'symbol' || property in target) return true;
    return (target as Session).has(property);
  },
  deleteProperty(target, property) {
    if (typeof property === 'symbol' || property in target) return false;
    (target as Session).remove(property);
    return true;
  },
};

function dataView(session: Session): ProxyHandler<SessionData> {
  const data = () => session[INTERNAL].data;
  return {
    get: (_view, property) => (typeof property === 'string' ? data().get(property) : undefined),
    set: (_view, property, value) => {
      if (typeof property !== 'string') return false;
      session.set(property, value);
      return true;
    },
    deleteProperty: (_view, property) => {
      if (typeof property !== 'string') return false;
      session.remove(property);
      return true;
    },
    has: (_view, property) => typeof property === 'string' && data().has(property),
    ownKeys: () => [...data().keys()],
    getOwnPropertyDescriptor: (_view, property) =>
      typeof property === 'string' && data().has(property)
        ? { value: data().get(property), writable: true, enumerable: true, configurable: true }
        : undefined,
  };
}
