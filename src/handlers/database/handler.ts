import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { nowSeconds } from '../../clock.js';
import {
  SessionConfigError,
  SessionError,
  SessionLockTimeoutError,
  SessionStoreError,
} from '../../errors.js';
import type {
  HandlerSettings,
  LockedRead,
  SessionHandler,
  SessionKey,
  SessionLock,
} from '../contract.js';
import { createSessionTableStore } from './connection.js';
import { migrationCommand, parseTableName, type SqlDialect, type TableName } from './schema.js';
import type { RowKey, SessionTableStore, SqlErrorLike } from './store.js';

/** ip_address is NOT NULL (and part of the key under matchIP); rows without matchIP use this. */
const NO_IP = '0.0.0.0';
const FIRST_RETRY_MS = 4;
const MAX_RETRY_MS = 100;

interface HeldLock {
  readonly key: RowKey;
  /** The read found no live session: a close() must remove the lock's row (and an expired session). */
  readonly empty: boolean;
  renewTimer: NodeJS.Timeout | undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Table-missing error codes: PostgreSQL 42P01, MySQL/MariaDB ER_NO_SUCH_TABLE (1146). */
function isMissingTable(error: unknown): boolean {
  const { code, errno } = (error ?? {}) as SqlErrorLike;
  return code === '42P01' || code === 'ER_NO_SUCH_TABLE' || errno === 1146;
}

/**
 * Sessions in a PostgreSQL or MySQL/MariaDB table. The lock lives in a row (of the UNLOGGED table
 * `<table>_locks` on PostgreSQL, of the session itself on MySQL): it is taken and the session read
 * in one statement, and released by the statement that writes, so no pooled connection is held
 * while a request runs or waits.
 */
export class DatabaseHandler implements SessionHandler {
  readonly name = 'database';
  readonly #held = new Map<string, HeldLock>();
  #settings: HandlerSettings | undefined;
  #store: SessionTableStore | undefined;
  #table: TableName | undefined;

  /** The SQL dialect in use, once open() has run. */
  get dialect(): SqlDialect | undefined {
    return this.#store?.dialect;
  }

  async open(settings: HandlerSettings): Promise<void> {
    const table = parseTableName(settings.savePath);
    const store = await createSessionTableStore({
      connection: settings.connection,
      table,
      ioTimeoutMs: settings.ioTimeoutMs,
      logger: settings.logger,
    });
    this.#settings = settings;
    this.#table = table;
    try {
      const shape = await this.#io('open', () => store.inspect());
      const fix = migrationCommand(store.dialect, table, settings.matchIP);
      const tableText = table.schema === null ? table.name : `${table.schema}.${table.name}`;
      if (shape === null) {
        throw new SessionConfigError(
          'savePath',
          `the session table "${tableText}" does not exist. Create it with the SQL printed by \`${fix}\`.`,
        );
      }
      const missing = store.requiredColumns.filter((column) => !shape.columns.includes(column));
      if (missing.length > 0) {
        throw new SessionConfigError(
          'savePath',
          `the session table "${tableText}" lacks the column(s) ${missing.join(', ')}${store.lockTable === null ? ' (keepsake keeps its lock in lock_token and lock_expires)' : ''}. See \`${fix}\` for the full table, and docs/drivers/database.md for the ALTER TABLE that upgrades a CodeIgniter table.`,
        );
      }
      if (shape.lockTable === 'missing') {
        throw new SessionConfigError(
          'savePath',
          `the lock table "${store.lockTable}" of the session table "${tableText}" does not exist. Create it with the SQL printed by \`${fix}\` (it is safe to run again: every statement is CREATE … IF NOT EXISTS).`,
        );
      }
      if (shape.lockTable === 'logged') {
        settings.logger.warn(
          `keepsake: the lock table "${store.lockTable}" is not UNLOGGED, so every lock costs a WAL flush; recreate it with the SQL printed by \`${fix}\` after dropping it, or run ALTER TABLE … SET UNLOGGED.`,
        );
      }
      const keyHasIp = shape.primaryKey.includes('ip_address');
      if (!shape.primaryKey.includes('id') || (settings.matchIP && !keyHasIp)) {
        throw new SessionConfigError(
          'matchIP',
          `the primary key of "${tableText}" is (${shape.primaryKey.join(', ')}), but ${settings.matchIP ? 'matchIP needs (id, ip_address)' : 'it must include id'}. Recreate the table from \`${fix}\`, or change it with ALTER TABLE … DROP PRIMARY KEY, ADD PRIMARY KEY (${settings.matchIP ? 'id, ip_address' : 'id'}).`,
        );
      }
      store.usePrimaryKey(keyHasIp ? ['id', 'ip_address'] : ['id']);
    } catch (error) {
      await store.close().catch(() => {});
      throw error;
    }
    this.#store = store;
  }

  async read(key: SessionKey, waitMs: number): Promise<LockedRead> {
    const store = this.#requireStore();
    const settings = this.#requireSettings();
    const rowKey = this.#rowKey(key);
    const token = randomBytes(16).toString('hex');
    const deadline = performance.now() + waitMs;
    let retryMs = FIRST_RETRY_MS;
    for (;;) {
      const now = Date.now();
      const row = await this.#io('read', () =>
        store.tryLock(rowKey, token, now + settings.lockTtlMs, now),
      );
      if (row !== null) {
        const live = row.timestamp > this.#liveAfter();
        const held: HeldLock = { key: rowKey, empty: !live, renewTimer: undefined };
        this.#held.set(token, held);
        this.#scheduleRenewal(token, held);
        return { data: live ? row.data.toString('utf8') : null, lock: { token } };
      }
      const remaining = deadline - performance.now();
      if (remaining <= 0) throw new SessionLockTimeoutError(waitMs, this.name);
      await sleep(Math.min(retryMs, remaining));
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
    }
  }

  async peek(key: SessionKey): Promise<string | null> {
    const store = this.#requireStore();
    const data = await this.#io('read', () => store.peek(this.#rowKey(key), this.#liveAfter()));
    return data === null ? null : data.toString('utf8');
  }

  async write(key: SessionKey, lock: SessionLock, data: string): Promise<void> {
    const store = this.#requireStore();
    const rowKey = this.#rowKey(key);
    const payload = Buffer.from(data, 'utf8');
    const timestamp = nowSeconds(this.#requireSettings().clock);
    this.#forget(lock);
    const written = await this.#io('write', () =>
      store.write(rowKey, lock.token, payload, timestamp),
    );
    if (!written) await this.#writeWithoutLock(rowKey, payload, timestamp);
  }

  async updateTimestamp(key: SessionKey, lock: SessionLock, data: string): Promise<void> {
    const held = this.#held.get(lock.token);
    if (held === undefined || held.empty) return this.write(key, lock, data);
    const store = this.#requireStore();
    const rowKey = this.#rowKey(key);
    const timestamp = nowSeconds(this.#requireSettings().clock);
    this.#forget(lock);
    const touched = await this.#io('write', () => store.touch(rowKey, lock.token, timestamp));
    if (!touched) await this.#writeWithoutLock(rowKey, Buffer.from(data, 'utf8'), timestamp);
  }

  async close(key: SessionKey, lock: SessionLock): Promise<void> {
    const store = this.#requireStore();
    const held = this.#forget(lock);
    const rowKey = this.#rowKey(key);
    // A key read as empty holds only a lock (and maybe an expired session): leave nothing behind.
    if (held?.empty !== false)
      await this.#io('close', () => store.deleteLocked(rowKey, lock.token, this.#liveAfter()));
    else await this.#io('close', () => store.unlock(rowKey, lock.token));
  }

  async destroy(key: SessionKey, lock: SessionLock | null): Promise<void> {
    const store = this.#requireStore();
    if (lock !== null) this.#forget(lock);
    await this.#io('destroy', () => store.delete(this.#rowKey(key)));
  }

  async validateId(key: SessionKey): Promise<boolean> {
    const store = this.#requireStore();
    return this.#io('validateId', () => store.exists(this.#rowKey(key), this.#liveAfter()));
  }

  async gc(maxLifetimeSeconds: number): Promise<number> {
    const store = this.#requireStore();
    const idleBefore = nowSeconds(this.#requireSettings().clock) - maxLifetimeSeconds;
    return this.#io('gc', () => store.deleteIdle(idleBefore, Date.now()));
  }

  async shutdown(): Promise<void> {
    for (const held of this.#held.values()) clearTimeout(held.renewTimer);
    this.#held.clear();
    const store = this.#store;
    this.#store = undefined;
    await store?.close();
  }

  /** The lock was lost (or the row deleted) before the write: recreate a deleted row, never overwrite a newer one. */
  async #writeWithoutLock(rowKey: RowKey, payload: Buffer, timestamp: number): Promise<void> {
    const store = this.#requireStore();
    const inserted = await this.#io('write', () =>
      store.insertIfAbsent(rowKey, payload, timestamp),
    );
    if (!inserted) {
      this.#requireSettings().logger.warn(
        `keepsake: the lock of session ${rowKey.id.slice(0, 8)}… expired before its write (the process was stalled longer than lockTtl, ${this.#requireSettings().lockTtlMs} ms), and another request has the session now; this request's changes were not saved so as not to overwrite newer data.`,
      );
    }
  }

  /** Renews the row lock every third of its TTL until it is released, so a slow request keeps it. */
  #scheduleRenewal(token: string, held: HeldLock): void {
    const { lockTtlMs, logger } = this.#requireSettings();
    const intervalMs = Math.max(Math.floor(lockTtlMs / 3), 10);
    held.renewTimer = setTimeout(() => {
      const store = this.#store;
      if (store === undefined || this.#held.get(token) !== held) return;
      this.#io('renew', () => store.renew(held.key, token, Date.now() + lockTtlMs)).then(
        (renewed) => {
          if (this.#held.get(token) !== held) return;
          if (renewed) this.#scheduleRenewal(token, held);
          else {
            logger.warn(
              `keepsake: lost the lock of session ${held.key.id.slice(0, 8)}… while it was held.`,
            );
          }
        },
        (error: unknown) => {
          logger.warn(
            `keepsake: renewing the lock of session ${held.key.id.slice(0, 8)}… failed: ${error instanceof Error ? error.message : String(error)}`,
          );
          if (this.#held.get(token) === held) this.#scheduleRenewal(token, held);
        },
      );
    }, intervalMs);
    held.renewTimer.unref();
  }

  #forget(lock: SessionLock): HeldLock | undefined {
    const held = this.#held.get(lock.token);
    if (held === undefined) return undefined;
    clearTimeout(held.renewTimer);
    this.#held.delete(lock.token);
    return held;
  }

  /** Rows whose timestamp is above this (epoch seconds) are live. */
  #liveAfter(): number {
    const settings = this.#requireSettings();
    return nowSeconds(settings.clock) - settings.lifetimeSeconds;
  }

  #rowKey(key: SessionKey): RowKey {
    if (key.ip === null) return { id: key.id, ip: NO_IP };
    // PostgreSQL's inet takes no zone index; an address it cannot parse shares one slot.
    const ip = key.ip.replace(/%.*$/, '');
    return { id: key.id, ip: net.isIP(ip) === 0 ? NO_IP : ip };
  }

  /** Runs one store call within ioTimeoutMs, turning failures into SessionStoreError. */
  async #io<T>(operation: string, run: () => Promise<T>): Promise<T> {
    const { ioTimeoutMs } = this.#requireSettings();
    let timer: NodeJS.Timeout | undefined;
    const call = run();
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ioTimeout (${ioTimeoutMs} ms)`)),
        ioTimeoutMs,
      );
    });
    try {
      return await Promise.race([call, timeout]);
    } catch (error) {
      call.catch(() => {});
      if (error instanceof SessionError) throw error;
      if (isMissingTable(error))
        throw new SessionStoreError(this.name, operation, this.#missingTable(error));
      throw new SessionStoreError(this.name, operation, error);
    } finally {
      clearTimeout(timer);
    }
  }

  #missingTable(cause: unknown): Error {
    const table = this.#table as TableName;
    const dialect = this.#store?.dialect ?? 'postgres';
    const settings = this.#requireSettings();
    const tableText = table.schema === null ? table.name : `${table.schema}.${table.name}`;
    const locks = this.#store?.lockTable ?? null;
    const what =
      locks === null
        ? `the session table "${tableText}" does not exist`
        : `the session table "${tableText}" or its lock table "${locks}" does not exist`;
    return new Error(
      `${what}; create it with the SQL printed by \`${migrationCommand(dialect, table, settings.matchIP)}\``,
      { cause },
    );
  }

  #requireStore(): SessionTableStore {
    if (this.#store === undefined)
      throw new Error('keepsake: the database handler was used before open() or after shutdown().');
    return this.#store;
  }

  #requireSettings(): HandlerSettings {
    if (this.#settings === undefined)
      throw new Error('keepsake: the database handler was used before open().');
    return this.#settings;
  }
}
