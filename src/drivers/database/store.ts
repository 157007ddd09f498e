import net from 'node:net';
import { nowSeconds } from '../../clock.js';
import type {
  DriverContext,
  LockAttempt,
  SessionKey,
  SessionStore,
  TouchOutcome,
} from '../contract.js';
import { lockedWith, payloadOf } from '../payload-bytes.js';
import { lockTableName, migrationCommand, type TableName, tableText } from './schema.js';
import type { RowKey, SessionTable } from './session-table.js';

/** ip_address is NOT NULL (and part of the key under matchIP); rows without matchIP use this. */
const NO_IP = '0.0.0.0';

function rowKey(key: SessionKey): RowKey {
  if (key.ip === null) return { id: key.id, ip: NO_IP };
  // PostgreSQL's inet takes no zone index; an address it cannot parse shares one slot.
  const ip = key.ip.replace(/%.*$/, '');
  return { id: key.id, ip: net.isIP(ip) === 0 ? NO_IP : ip };
}

/**
 * Sessions in a PostgreSQL or MySQL/MariaDB table: the store primitives over one dialect's
 * statements. The lock lives in a row, is taken together with the read, and is released by the
 * statement that writes, touches or deletes, which acts only while the row still holds the
 * request's token; so no pooled connection is held while a request runs or waits.
 *
 * `timestamp` keeps CodeIgniter's meaning, the last activity in epoch seconds, and CodeIgniter's
 * GC (`timestamp < now − maxLifetime`) keeps working on the table. A write or touch with a lifetime
 * of its own (a regenerated ID's grace window) stores `now + (lifetime − context lifetime)`
 * instead: the activity time from which the context lifetime ends exactly when its own does. A
 * session is live while `timestamp > now − context lifetime`.
 */
export class DatabaseStore implements SessionStore {
  readonly #table: SessionTable;
  readonly #tableName: TableName;
  readonly #context: DriverContext;
  readonly #end: (() => Promise<void>) | null;

  /** `end`: closes the pool when keepsake created it. */
  constructor(
    table: SessionTable,
    tableName: TableName,
    context: DriverContext,
    end: (() => Promise<void>) | null,
  ) {
    this.#table = table;
    this.#tableName = tableName;
    this.#context = context;
    this.#end = end;
  }

  async lockAndRead(key: SessionKey, token: string): Promise<LockAttempt> {
    const nowMs = Date.now();
    const row = await this.#run(() =>
      this.#table.tryLock(rowKey(key), token, nowMs + this.#context.lockTtlMs, nowMs),
    );
    if (row === null) return { locked: false };
    const live = row.data !== null && row.timestamp > this.#liveAfter();
    return lockedWith(live ? row.data : null, 'the data column');
  }

  renewLock(key: SessionKey, token: string): Promise<boolean> {
    return this.#run(() =>
      this.#table.renew(rowKey(key), token, Date.now() + this.#context.lockTtlMs),
    );
  }

  writeAndUnlock(
    key: SessionKey,
    token: string,
    payload: string,
    lifetimeSeconds: number,
  ): Promise<boolean> {
    const data = Buffer.from(payload, 'utf8');
    return this.#run(() =>
      this.#table.write(rowKey(key), token, data, this.#timestamp(lifetimeSeconds)),
    );
  }

  touchAndUnlock(key: SessionKey, token: string, lifetimeSeconds: number): Promise<TouchOutcome> {
    return this.#run(() =>
      this.#table.touch(rowKey(key), token, this.#timestamp(lifetimeSeconds), this.#liveAfter()),
    );
  }

  destroyAndUnlock(key: SessionKey, token: string): Promise<boolean> {
    return this.#run(() => this.#table.destroy(rowKey(key), token));
  }

  unlock(key: SessionKey, token: string, discard: boolean): Promise<void> {
    return this.#run(() =>
      discard
        ? this.#table.discard(rowKey(key), token, this.#liveAfter())
        : this.#table.unlock(rowKey(key), token),
    );
  }

  /** A record that is not UTF-8 reads as no session here; the next locked request replaces it. */
  async peek(key: SessionKey): Promise<string | null> {
    const data = await this.#run(() => this.#table.peek(rowKey(key), this.#liveAfter()));
    return data === null ? null : payloadOf(data);
  }

  gc(maxLifetimeSeconds: number): Promise<number> {
    const idleBefore = nowSeconds(this.#context.clock) - maxLifetimeSeconds;
    return this.#run(() => this.#table.deleteIdle(idleBefore, Date.now()));
  }

  isTransient(error: unknown): boolean {
    return this.#table.isTransient(error);
  }

  async close(): Promise<void> {
    await this.#end?.();
  }

  /** Rows whose timestamp is above this (epoch seconds) are live. */
  #liveAfter(): number {
    return nowSeconds(this.#context.clock) - this.#context.lifetimeSeconds;
  }

  /** The timestamp that makes a session live for `lifetimeSeconds` from now (see the class comment). */
  #timestamp(lifetimeSeconds: number): number {
    return nowSeconds(this.#context.clock) + lifetimeSeconds - this.#context.lifetimeSeconds;
  }

  /** Runs one statement, saying which command recreates a table that went missing since opening. */
  async #run<Result>(statement: () => Promise<Result>): Promise<Result> {
    try {
      return await statement();
    } catch (error) {
      if (!this.#table.isMissingTable(error)) throw error;
      const name = tableText(this.#tableName);
      const what =
        this.#table.dialect === 'postgres'
          ? `the session table "${name}" or its lock table "${tableText(lockTableName(this.#tableName))}" does not exist or lacks a column`
          : `the session table "${name}" does not exist or lacks a column`;
      const fix = migrationCommand(this.#table.dialect, this.#tableName, this.#context.matchIP);
      throw new Error(`${what}; create it with the SQL printed by \`${fix}\``, { cause: error });
    }
  }
}
