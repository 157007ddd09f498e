import { nowSeconds } from '../clock.js';
import { SessionConfigError, SessionStoreError } from '../errors.js';
import type {
  DriverContext,
  LockAttempt,
  SessionDriver,
  SessionKey,
  SessionStore,
  TouchOutcome,
} from './contract.js';
import { lockedWith, payloadOf } from './payload-bytes.js';
import { requirePeer } from './peer.js';

type Bindings = Readonly<Record<string, unknown>>;

/** The part of a better-sqlite3 statement the driver uses. */
export interface SqliteStatement {
  run(parameters: Bindings): { readonly changes: number };
  get(parameters: Bindings): unknown;
}

/** The part of a better-sqlite3 `Database` the driver uses. */
export interface SqliteDatabase {
  readonly open: boolean;
  readonly readonly: boolean;
  prepare(source: string): SqliteStatement;
  exec(source: string): unknown;
  pragma(source: string, options: { simple: true }): unknown;
  transaction(body: () => unknown): { immediate(): unknown };
  close(): unknown;
}

export interface SqliteDriverOptions {
  /** The database file: keepsake opens it (creating it if missing) in WAL mode, and closes it. */
  readonly path?: string;
  /** Or a better-sqlite3 Database your app opened: used with its own settings, never closed. */
  readonly database?: SqliteDatabase;
  /** The session table (default `ci_sessions`); created if missing, with `<table>_locks`. */
  readonly table?: string;
}

/**
 * How long a statement waits for another process's write to end. better-sqlite3 waits
 * synchronously, blocking the event loop, so this is short: a session statement holds the write
 * lock for microseconds, and longer waits are the core's, with backoff and without blocking.
 */
const BUSY_TIMEOUT_MS = 20;
/** Setup (WAL switch, CREATE TABLE) serves no request yet, so it may wait for a busy database. */
const SETUP_BUSY_TIMEOUT_MS = 5_000;
/** GC deletes this many sessions per statement, so no statement holds the write lock for long. */
const GC_BATCH = 500;
/** ip_address is NOT NULL and part of the key; rows stored without matchIP use this. */
const NO_IP = '0.0.0.0';
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const SIMPLE = { simple: true } as const;

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/** CodeIgniter's session table, and the locks in a table of their own (see SqliteStore). */
function schema(table: string): string {
  return `CREATE TABLE IF NOT EXISTS "${table}" (
      id TEXT NOT NULL,
      ip_address TEXT NOT NULL,
      timestamp INTEGER NOT NULL,
      data BLOB NOT NULL,
      PRIMARY KEY (id, ip_address)
    );
    CREATE INDEX IF NOT EXISTS "${table}_timestamp" ON "${table}" (timestamp);
    CREATE TABLE IF NOT EXISTS "${table}_locks" (
      id TEXT NOT NULL,
      ip_address TEXT NOT NULL,
      lock_token TEXT NOT NULL,
      lock_expires INTEGER NOT NULL,
      PRIMARY KEY (id, ip_address)
    ) WITHOUT ROWID;`;
}

/** Prepared once: a column or key the tables lack fails here, at open. */
function statements(db: SqliteDatabase, table: string) {
  const sessions = `"${table}"`;
  const locks = `"${table}_locks"`;
  const slot = 'id = @id AND ip_address = @ip';
  const sql = {
    // Takes a free or expired lock, or one this token already took (a retried attempt); changes
    // nothing while another token holds it.
    lock: `INSERT INTO ${locks} (id, ip_address, lock_token, lock_expires)
      VALUES (@id, @ip, @token, @lockExpires)
      ON CONFLICT (id, ip_address) DO UPDATE SET lock_token = @token, lock_expires = @lockExpires
        WHERE lock_expires <= @nowMs OR lock_token = @token`,
    renewLock: `UPDATE ${locks} SET lock_expires = @lockExpires WHERE ${slot} AND lock_token = @token`,
    held: `SELECT 1 FROM ${locks} WHERE ${slot} AND lock_token = @token`,
    release: `DELETE FROM ${locks} WHERE ${slot} AND lock_token = @token`,
    revokeLock: `DELETE FROM ${locks} WHERE ${slot}`,
    write: `INSERT INTO ${sessions} (id, ip_address, timestamp, data) VALUES (@id, @ip, @timestamp, @data)
      ON CONFLICT (id, ip_address) DO UPDATE SET timestamp = @timestamp, data = @data`,
    touch: `UPDATE ${sessions} SET timestamp = @timestamp WHERE ${slot} AND timestamp > @liveAfter`,
    destroy: `DELETE FROM ${sessions} WHERE ${slot}`,
    discard: `DELETE FROM ${sessions} WHERE ${slot} AND timestamp <= @liveAfter`,
    peek: `SELECT CAST(data AS BLOB) AS data FROM ${sessions} WHERE ${slot} AND timestamp > @liveAfter`,
    read: `SELECT CAST(data AS BLOB) AS data, timestamp FROM ${sessions} WHERE ${slot} AND timestamp > @liveAfter`,
    gcLocks: `DELETE FROM ${locks} WHERE lock_expires <= @nowMs`,
    gc: `DELETE FROM ${sessions} WHERE rowid IN (SELECT rowid FROM ${sessions} AS s
      WHERE timestamp < @before AND NOT EXISTS (SELECT 1 FROM ${locks} AS k
        WHERE k.id = s.id AND k.ip_address = s.ip_address AND k.lock_expires > @nowMs)
      LIMIT ${GC_BATCH})`,
  };
  return Object.fromEntries(
    Object.entries(sql).map(([name, source]) => [name, db.prepare(source)]),
  ) as Record<keyof typeof sql, SqliteStatement>;
}

/**
 * Sessions in one SQLite file shared by the processes of one machine. A lock is a row of
 * `<table>_locks` (token, and expiry in epoch ms by the system clock, which every process on the
 * machine shares): one transaction takes it with an upsert and reads the session; a write, touch
 * or delete runs in one transaction with the deletion of that row, and only when the row still
 * holds the request's token. The lock has a table of its own so that taking it writes one small
 * row, not the session again. Locks expire: a crashed process's lock frees itself after lockTtl.
 *
 * `timestamp` is CodeIgniter's last activity in epoch seconds; a write or touch with a lifetime of
 * its own stores `now + (lifetime − context lifetime)`, as the database driver does. A session is
 * live while `timestamp > now − context lifetime`.
 *
 * better-sqlite3 is synchronous: every statement runs on the event loop and blocks it while it
 * runs (microseconds for a small session, milliseconds for a large payload or a busy wait). The
 * promises answer the contract; nothing here runs concurrently.
 */
class SqliteStore implements SessionStore {
  readonly #db: SqliteDatabase;
  readonly #ownsDatabase: boolean;
  readonly #sql: ReturnType<typeof statements>;
  readonly #context: DriverContext;

  constructor(db: SqliteDatabase, ownsDatabase: boolean, table: string, context: DriverContext) {
    this.#db = db;
    this.#ownsDatabase = ownsDatabase;
    this.#sql = statements(db, table);
    this.#context = context;
  }

  async lockAndRead(key: SessionKey, token: string): Promise<LockAttempt> {
    const slot = this.#slot(key);
    const nowMs = Date.now();
    const lockExpires = nowMs + this.#context.lockTtlMs;
    let row: { data: Buffer | null; timestamp: number } | undefined;
    try {
      // A transaction rather than one upsert … RETURNING (SELECT data …), which takes SQLite
      // milliseconds for a large blob.
      row = this.#atomically(() => {
        const taken = this.#sql.lock.run({ ...slot, token, lockExpires, nowMs }).changes > 0;
        const live = taken && this.#sql.read.get({ ...slot, liveAfter: this.#liveAfter() });
        return taken
          ? ((live as { data: Buffer; timestamp: number } | undefined) ?? {
              data: null,
              timestamp: 0,
            })
          : undefined;
      });
    } catch (error) {
      // Another process is writing: wait in the core's backoff, not in a blocking busy loop.
      if (isBusy(error)) return { locked: false };
      throw error;
    }
    if (row === undefined) return { locked: false };
    const left = row.timestamp + this.#context.lifetimeSeconds - nowSeconds(this.#context.clock);
    return lockedWith(row.data, 'the data column', left * 1000);
  }

  async renewLock(key: SessionKey, token: string): Promise<boolean> {
    const lockExpires = Date.now() + this.#context.lockTtlMs;
    return this.#sql.renewLock.run({ ...this.#slot(key), token, lockExpires }).changes > 0;
  }

  async writeAndUnlock(
    key: SessionKey,
    token: string,
    payload: string,
    lifetimeSeconds: number,
  ): Promise<boolean> {
    const slot = this.#slot(key);
    const data = Buffer.from(payload, 'utf8');
    const timestamp = this.#timestamp(lifetimeSeconds);
    return this.#atomically(() => {
      if (this.#sql.release.run({ ...slot, token }).changes === 0) return false;
      this.#sql.write.run({ ...slot, timestamp, data });
      return true;
    });
  }

  async touchAndUnlock(
    key: SessionKey,
    token: string,
    lifetimeSeconds: number,
  ): Promise<TouchOutcome> {
    const slot = this.#slot(key);
    const timestamp = this.#timestamp(lifetimeSeconds);
    return this.#atomically(() => {
      if (this.#sql.held.get({ ...slot, token }) === undefined) return 'fenced';
      if (this.#sql.touch.run({ ...slot, timestamp, liveAfter: this.#liveAfter() }).changes === 0)
        return 'missing';
      this.#sql.release.run({ ...slot, token });
      return 'touched';
    });
  }

  async destroyAndUnlock(key: SessionKey, token: string): Promise<boolean> {
    const slot = this.#slot(key);
    return this.#atomically(() => {
      if (this.#sql.release.run({ ...slot, token }).changes === 0) return false;
      this.#sql.destroy.run(slot);
      return true;
    });
  }

  async unlock(key: SessionKey, token: string, discard: boolean): Promise<void> {
    const slot = this.#slot(key);
    this.#atomically(() => {
      const released = this.#sql.release.run({ ...slot, token }).changes > 0;
      // Only an expired session goes with the lock, never a live one.
      if (released && discard) this.#sql.discard.run({ ...slot, liveAfter: this.#liveAfter() });
    });
  }

  /**
   * Deletes the session and its lock row, whoever holds it, in one transaction: the holder's token
   * then matches no row, so its write, touch or delete is refused, and the next request to take
   * the lock reads no session.
   */
  async revoke(key: SessionKey): Promise<void> {
    const slot = this.#slot(key);
    this.#atomically(() => {
      this.#sql.destroy.run(slot);
      this.#sql.revokeLock.run(slot);
    });
  }

  /** A record that is not UTF-8 reads as no session here; the next locked request replaces it. */
  async peek(key: SessionKey): Promise<string | null> {
    const row = this.#sql.peek.get({ ...this.#slot(key), liveAfter: this.#liveAfter() }) as
      | { data: Buffer }
      | undefined;
    return row === undefined ? null : payloadOf(row.data);
  }

  /**
   * Deletes the sessions idle longer than `maxLifetimeSeconds` (or expired) whose lock is not
   * held, and the locks of crashed holders.
   */
  async gc(maxLifetimeSeconds: number): Promise<number> {
    const now = nowSeconds(this.#context.clock);
    const before = Math.max(now - maxLifetimeSeconds, this.#liveAfter() + 1);
    this.#sql.gcLocks.run({ nowMs: Date.now() });
    let removed = 0;
    for (;;) {
      const { changes } = this.#sql.gc.run({ before, nowMs: Date.now() });
      removed += changes;
      if (changes < GC_BATCH) return removed;
      // Between batches this process serves its requests, and other processes get to write.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  isTransient(error: unknown): boolean {
    return isBusy(error);
  }

  async close(): Promise<void> {
    if (this.#ownsDatabase) this.#db.close();
  }

  /** Runs `body` in one write transaction (BEGIN IMMEDIATE: it takes the write lock at once). */
  #atomically<Result>(body: () => Result): Result {
    return this.#db.transaction(body).immediate() as Result;
  }

  #slot(key: SessionKey): { id: string; ip: string } {
    return { id: key.id, ip: key.ip ?? NO_IP };
  }

  /** Sessions whose timestamp is above this (epoch seconds) are live. */
  #liveAfter(): number {
    return nowSeconds(this.#context.clock) - this.#context.lifetimeSeconds;
  }

  /** The timestamp that keeps a session live for `lifetimeSeconds` from now (see the class). */
  #timestamp(lifetimeSeconds: number): number {
    return nowSeconds(this.#context.clock) + lifetimeSeconds - this.#context.lifetimeSeconds;
  }
}

/** Opens the file, creating it if missing; its setup may wait for other processes' writes. */
async function openFile(path: string): Promise<SqliteDatabase> {
  const { default: Database } = await import('better-sqlite3');
  try {
    return new Database(path, { timeout: SETUP_BUSY_TIMEOUT_MS });
  } catch (error) {
    throw new SessionConfigError('path', `cannot open the SQLite database "${path}".`, {
      cause: error,
    });
  }
}

/**
 * The sqlite driver: `sqlite({ path: '/var/lib/app/sessions.db' })`, or `sqlite({ database })`
 * with a better-sqlite3 Database your app opened. For the processes of one machine (PM2,
 * node:cluster) without a server. Options are checked here, at once; the file is opened when the
 * session manager opens the driver.
 */
export function sqlite(options: SqliteDriverOptions): SessionDriver {
  const { path, database, table = 'ci_sessions' } = options;
  if ((path === undefined) === (database === undefined)) {
    throw new SessionConfigError(
      'path',
      'the sqlite driver takes either a path (a file keepsake opens) or a database (a better-sqlite3 Database your app opened), not both and not neither.',
    );
  }
  if (path !== undefined && (typeof path !== 'string' || path === '')) {
    throw new SessionConfigError('path', 'the SQLite database path must be a non-empty string.');
  }
  if (database !== undefined) {
    if (typeof database.prepare !== 'function' || typeof database.pragma !== 'function') {
      throw new SessionConfigError('database', 'expected a better-sqlite3 Database.');
    }
    if (!database.open || database.readonly) {
      throw new SessionConfigError(
        'database',
        `the better-sqlite3 Database must be open and writable; it is ${database.open ? 'read-only' : 'closed'}.`,
      );
    }
  }
  if (typeof table !== 'string' || !IDENTIFIER.test(table)) {
    throw new SessionConfigError(
      'table',
      `the session table name must be letters, digits and "_" (at most 63, not starting with a digit), got ${JSON.stringify(table)}.`,
    );
  }
  if (path !== undefined) {
    requirePeer('better-sqlite3', 'the sqlite driver', 'or pass your own better-sqlite3 Database');
  }
  return {
    name: 'sqlite',
    async open(context: DriverContext): Promise<SessionStore> {
      const db = database ?? (await openFile(path as string));
      const owned = database === undefined;
      try {
        // A file keepsake opens is set up for sessions; a database the app opened keeps its settings.
        const mode = db.pragma(owned ? 'journal_mode = WAL' : 'journal_mode', SIMPLE);
        if (mode !== 'wal') {
          context.logger.warn(
            `keepsake: the sqlite driver's database is in ${String(mode)} mode, not WAL, so its readers and writer wait for each other; db.pragma('journal_mode = WAL') switches it.`,
          );
        }
        // With WAL, a commit then waits for no fsync; a power loss may undo the last few (see docs).
        if (owned) db.pragma('synchronous = NORMAL', SIMPLE);
        db.exec(schema(table));
        if (owned) db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`, SIMPLE);
      } catch (error) {
        if (owned) db.close();
        throw new SessionStoreError('sqlite', 'open', error);
      }
      try {
        return new SqliteStore(db, owned, table, context);
      } catch (error) {
        if (owned) db.close();
        throw new SessionConfigError(
          'table',
          `the table "${table}" or "${table}_locks" exists with other columns or another primary key than keepsake creates (id, ip_address, timestamp, data; primary key (id, ip_address)): see docs/drivers/sqlite.md.`,
          { cause: error },
        );
      }
    },
  };
}
