import type { Clock, FakeClock } from '../clock.js';
import type { SessionConfig } from '../config.js';
import { readCookie } from '../cookie.js';
import { array } from '../drivers/array.js';
import type { SessionDriver } from '../drivers/contract.js';
import { isValidSessionId } from '../id.js';
import { SessionManager } from '../manager.js';
import { LAST_REGENERATE_KEY, VARS_KEY } from '../markers.js';
import { type AppSessionData, INTERNAL, type Session, type SessionData } from '../session.js';
import { type SetCookieSource, sessionCookieChange, setCookieValues } from './set-cookie.js';
import { ReadLog, watchedDriver } from './watched-driver.js';

/** Options of `testSessions()`: the app's session configuration, with a driver object and a clock. */
export interface TestSessionsOptions
  extends Omit<SessionConfig, 'driver' | 'clock' | 'savePath' | 'connection'> {
  /**
   * The driver to keep the sessions in (default: a fresh `array()`). Any driver object works, e.g.
   * `file({ path })` to test against files; a driver name would give every manager its own store.
   */
  driver?: SessionDriver;
  /** A `FakeClock` (or any clock) to move time: tempdata expiry, regeneration after `timeToUpdate`. */
  clock?: FakeClock | Clock;
  /** The client IP the app sees (only used under `matchIP`). Default '127.0.0.1'. */
  ip?: string;
}

/** The session configuration for the app under test: spread it into the adapter's options. */
export type TestSessionConfig = SessionConfig & {
  readonly driver: SessionDriver;
  readonly clock: Clock;
};

/** What a session starts with besides its userdata, as if a previous request had set it. */
export interface SessionFill<Data extends SessionData = AppSessionData> {
  /** Flashdata: readable in the next request only. */
  readonly flash?: Partial<Data>;
  /** Tempdata: readable until its time to live runs out. */
  readonly temp?: Partial<Data>;
  /** Seconds the tempdata lives: one number, or one per key (default 300, CodeIgniter's). */
  readonly tempTtl?: number | Readonly<Record<string, number>>;
}

/** How the request of `start()` or `resume()` looks to keepsake. */
export interface TestRequestOptions {
  /** `X-Requested-With: XMLHttpRequest`: no automatic regeneration, and the cookie is re-sent. */
  readonly ajax?: boolean;
  /** A read-only request: no lock, and every change throws. */
  readonly readOnly?: boolean;
}

/**
 * A session as stored after a request, seen as the client's next request will see it: flashdata
 * that was read in this request, and tempdata that has expired, are gone.
 */
export interface SessionSnapshot<Data extends SessionData = AppSessionData> {
  /** The session ID the client holds now: the one the response set, else the one it sent; null when it holds none. */
  readonly id: string | null;
  /** The session ID the request carried; null when it carried none (or not a valid one). */
  readonly previousId: string | null;
  /** The Cookie header for the client's next request; undefined when it holds no session. */
  readonly cookie: string | undefined;
  /** A session is stored under `id`. */
  readonly exists: boolean;
  /** Every key the next request can read — flashdata and tempdata included — without keepsake's own bookkeeping keys. */
  readonly data: Partial<Data> & SessionData;
  /** The flashdata the next request will see. */
  readonly flash: Partial<Data> & SessionData;
  /** The tempdata that has not expired. */
  readonly temp: Partial<Data> & SessionData;
  /** The client's session moved to a new ID, its data with it (`regenerate()`, or `timeToUpdate`). */
  readonly regenerated: boolean;
  /** The client was given a new session: it carried no session cookie, or one that led to no stored session. */
  readonly created: boolean;
  /** The response told the client to forget its session, and nothing is stored under it any more. */
  readonly destroyed: boolean;
}

interface Stored {
  readonly exists: boolean;
  readonly data: SessionData;
  readonly flash: SessionData;
  readonly temp: SessionData;
}

const NOTHING_STORED: Stored = { exists: false, data: {}, flash: {}, temp: {} };

function clockOf(clock: FakeClock | Clock | undefined): Clock | undefined {
  return typeof clock === 'object' ? clock.now : clock;
}

/**
 * Sessions for testing an app: give the app `sessions.config` (or `sessions.driver`), store a
 * session with `create()` and send its cookie, then read what the request left in the store with
 * `after()`. `start()` and `finish()` do the same for a handler called without a server, with a
 * real Session (CodeIgniter's MockSession).
 *
 * Everything is read from the store through the driver, never from the app's memory: a snapshot
 * shows what was saved.
 */
export class TestSessions<Data extends SessionData = AppSessionData> {
  /** The driver the app must use: the one given (or a fresh `array()`), watched by these helpers. */
  readonly driver: SessionDriver;
  /** The app's session configuration: `session({ ...sessions.config, readOnly })`. */
  readonly config: TestSessionConfig;
  /** Starts, writes and reads sessions for the helpers, with the app's settings. */
  readonly #manager: SessionManager;
  readonly #reads = new ReadLog();
  readonly #ip: string;
  /** The Cookie header each session of start() and resume() was started with. */
  readonly #started = new WeakMap<object, string | undefined>();

  constructor(options: TestSessionsOptions = {}) {
    const { driver = array(), clock, ip = '127.0.0.1', ...config } = options;
    this.driver = watchedDriver(driver, this.#reads);
    const given = clockOf(clock);
    this.config = { ...config, driver: this.driver, clock: given ?? (() => Date.now()) };
    this.#ip = ip;
    // A session the helpers create is stored even without userdata, and never triggers GC.
    this.#manager = new SessionManager({
      ...this.config,
      gcProbability: 0,
      createEmptySessions: true,
    });
  }

  /** The name of the session cookie. */
  get cookieName(): string {
    return this.#manager.config.cookieName;
  }

  /**
   * Stores a new session holding `data` (and `fill`'s flashdata and tempdata, as if the previous
   * request had set them) and answers the Cookie header that carries it: `ci_session=<id>`.
   * CodeIgniter's `withSession()`.
   */
  async create(data: Partial<Data> = {}, fill: SessionFill<Data> = {}): Promise<string> {
    const session = await this.#manager.start<SessionData>({
      cookieHeader: undefined,
      ip: this.#ip,
      ajax: false,
    });
    try {
      session.set(data);
      fillSession(session, fill);
    } catch (error) {
      await session.destroy();
      throw error;
    }
    await this.#manager.commit(session);
    return `${this.cookieName}=${session.id}`;
  }

  /**
   * A real, open Session of a request on a new stored session holding `data` and `fill`: hand it
   * to the code under test, then call `finish(session)`. CodeIgniter's MockSession.
   */
  async start(
    data: Partial<Data> = {},
    fill: SessionFill<Data> & TestRequestOptions = {},
  ): Promise<Session<Data>> {
    return this.resume(await this.create(data, fill), fill);
  }

  /**
   * A real Session of a request that carries `cookie` (a Cookie header, e.g. a snapshot's
   * `cookie`, or a session ID); call `finish(session)` when the code under test is done with it.
   */
  async resume(
    cookie: string | undefined,
    options: TestRequestOptions = {},
  ): Promise<Session<Data>> {
    const header = this.#headerOf(cookie);
    const session = await this.#manager.start<Data>({
      cookieHeader: header,
      ip: this.#ip,
      ajax: options.ajax ?? false,
      readOnly: options.readOnly ?? false,
    });
    this.#started.set(session, header);
    return session;
  }

  /**
   * Ends the request of a session from `start()` or `resume()` as an adapter does — saves it and
   * unlocks it, then takes its Set-Cookie values — and answers what is stored.
   */
  async finish(session: Session<Data>): Promise<SessionSnapshot<Data>> {
    if (!this.#started.has(session)) {
      throw new TypeError(
        'keepsake: finish() takes a session that start() or resume() of the same testSessions() started, once.',
      );
    }
    const cookie = this.#started.get(session);
    this.#started.delete(session);
    await this.#manager.commit(session);
    return this.after(this.#manager.setCookies(session), cookie);
  }

  /**
   * What a request left in the store: `response` is where its Set-Cookie headers are (a fetch
   * `Response`, an `app.inject()` response, `getSetCookie()`'s list…), `requestCookie` the Cookie
   * header the request carried. A regenerated session is followed to its new ID; a destroyed one
   * shows as `destroyed`, with nothing stored.
   */
  async after(
    response: SetCookieSource,
    requestCookie?: string | null,
  ): Promise<SessionSnapshot<Data>> {
    const previousId = this.#idOf(requestCookie);
    const change = sessionCookieChange(
      setCookieValues(response),
      this.cookieName,
      this.config.clock(),
    );
    let id = previousId;
    if (change?.kind === 'set') id = isValidSessionId(change.value) ? change.value : null;
    else if (change?.kind === 'cleared') id = null;
    const stored = await this.#read(id);
    const moved = id !== null && id !== previousId;
    const regenerated = moved && previousId !== null && this.#reads.heldSession(previousId);
    const destroyed =
      change?.kind === 'cleared' && (previousId === null || !(await this.#read(previousId)).exists);
    return this.#snapshot(id, previousId, stored, {
      regenerated,
      created: moved && !regenerated,
      destroyed,
    });
  }

  /**
   * What is stored for `cookie` (a Cookie header or a session ID) now, without a request — e.g.
   * after moving a `FakeClock`, to see tempdata expire.
   */
  async inspect(cookie: string | undefined): Promise<SessionSnapshot<Data>> {
    const id = this.#idOf(cookie);
    return this.#snapshot(id, id, await this.#read(id), {
      regenerated: false,
      created: false,
      destroyed: false,
    });
  }

  /** Closes what the helpers opened (an array driver has nothing to close). */
  close(): Promise<void> {
    return this.#manager.shutdown();
  }

  #snapshot(
    id: string | null,
    previousId: string | null,
    stored: Stored,
    outcome: Pick<SessionSnapshot<Data>, 'regenerated' | 'created' | 'destroyed'>,
  ): SessionSnapshot<Data> {
    return {
      id,
      previousId,
      cookie: id === null ? undefined : `${this.cookieName}=${id}`,
      exists: stored.exists,
      data: stored.data as Partial<Data> & SessionData,
      flash: stored.flash as Partial<Data> & SessionData,
      temp: stored.temp as Partial<Data> & SessionData,
      ...outcome,
    };
  }

  /** The session ID in a Cookie header, or a bare session ID; null when there is none. */
  #idOf(cookie: string | null | undefined): string | null {
    if (cookie === null || cookie === undefined) return null;
    if (isValidSessionId(cookie)) return cookie;
    const value = readCookie(cookie, this.cookieName);
    return isValidSessionId(value) ? value : null;
  }

  #headerOf(cookie: string | undefined): string | undefined {
    return cookie !== undefined && isValidSessionId(cookie)
      ? `${this.cookieName}=${cookie}`
      : cookie;
  }

  /** Reads the session `id` leads to as a read-only request would: through the store, without a lock. */
  async #read(id: string | null): Promise<Stored> {
    if (id === null) return NOTHING_STORED;
    const session = await this.#manager.start<SessionData>({
      cookieHeader: `${this.cookieName}=${id}`,
      ip: this.#ip,
      ajax: false,
      readOnly: true,
    });
    await this.#manager.commit(session);
    if (session.id === '') return NOTHING_STORED;
    const data: [string, unknown][] = [];
    for (const entry of session[INTERNAL].data) {
      if (entry[0] !== VARS_KEY && entry[0] !== LAST_REGENERATE_KEY) data.push(entry);
    }
    return {
      exists: true,
      data: Object.fromEntries(data),
      flash: session.getFlashdata(),
      temp: session.getTempdata(),
    };
  }
}

/** Sets the flashdata and tempdata of `fill`; throws, leaving the caller to discard the session, when one cannot be marked. */
function fillSession<Data extends SessionData>(
  session: Session<SessionData>,
  fill: SessionFill<Data>,
): void {
  const { flash = {}, temp = {}, tempTtl = 300 } = fill;
  const flashKeys = Object.keys(flash);
  if (flashKeys.length > 0) {
    session.set(flash);
    if (!session.markAsFlashdata(flashKeys)) {
      throw new TypeError(
        `keepsake: flashdata cannot be null (${flashKeys.join(', ')}): CodeIgniter marks only keys that hold a value.`,
      );
    }
  }
  const tempKeys = Object.keys(temp);
  if (tempKeys.length > 0) {
    session.set(temp);
    const ttls: Record<string, number> = {};
    for (const key of tempKeys) {
      ttls[key] = typeof tempTtl === 'number' ? tempTtl : (tempTtl[key] ?? 300);
    }
    session.markAsTempdata(ttls);
  }
}

/**
 * Sessions for testing an app's session logic, kept in `options.driver` (a fresh `array()` by
 * default): `app.use(session(sessions.config))`, `create()` a session, send its cookie, and read
 * the result with `after()`.
 */
export function testSessions<Data extends SessionData = AppSessionData>(
  options: TestSessionsOptions = {},
): TestSessions<Data> {
  return new TestSessions<Data>(options);
}
