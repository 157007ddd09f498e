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
import { HeldLocks } from './held-locks.js';
import type { LockConnection, LockConnections } from './lock-connection.js';
import type { LockKeyScheme } from './lock-key.js';
import { type TableName, tableRecipe, tableText } from './schema.js';
import type { RowKey, SessionTable } from './session-table.js';
import { isTombstone, newTombstone } from './tombstone.js';

/** ip_address is NOT NULL (and part of the key under matchIP); rows without matchIP use this. */
const NO_IP = '0.0.0.0';

/** PostgreSQL's inet takes no zone index; an address it cannot parse is stored as NO_IP. */
function address(ip: string | null | undefined): string {
  const plain = (ip ?? '').replace(/%.*$/, '');
  return net.isIP(plain) === 0 ? NO_IP : plain;
}

/** How a store names its rows: the ID prefix, and the layout, whose table a lost table needs. */
export interface RowNaming {
  /** Put before the session's ID in the `id` column (CodeIgniter 4.3+: `<cookieName>:`). */
  readonly idPrefix: string;
  readonly layout: LockKeyScheme;
}

const PLAIN_NAMING: RowNaming = { idPrefix: '', layout: 'keepsake' };

const slotOf = (key: RowKey) => `${key.id}\n${key.ip}`;

/**
 * Sessions in a PostgreSQL or MySQL/MariaDB table: the store primitives over one dialect's
 * statements. A session's lock is a named lock of the database (an advisory lock on PostgreSQL,
 * GET_LOCK on MySQL) held by one of a few lock connections this store keeps: taking it writes
 * nothing durable, and the database releases it the moment the connection ends, so a crashed
 * process frees its sessions at once. Locks are tried, never waited for on the server: a waiting
 * request holds no connection, and sleeps in the core's backoff. The locks do not expire, so the
 * store has no renewLock; a lock is lost only with its connection, after which every call of its
 * holder answers false or 'fenced'. The statements that change a session under its lock run on the
 * connection that holds it, so none of them can run once the lock is gone.
 *
 * `timestamp` keeps CodeIgniter's meaning, the last activity in epoch seconds, and CodeIgniter's
 * GC (`timestamp < now − maxLifetime`) keeps working on the table. A write or touch with a lifetime
 * of its own (a regenerated ID's grace window) stores `now + (lifetime − context lifetime)`
 * instead: the activity time from which the context lifetime ends exactly when its own does. A
 * session is live while `timestamp > now − context lifetime`.
 */
export class DatabaseStore<Client> implements SessionStore {
  readonly #table: SessionTable<Client>;
  readonly #connections: LockConnections<Client>;
  readonly #held = new HeldLocks<LockConnection<Client>>();
  readonly #tableName: TableName;
  readonly #context: DriverContext;
  readonly #end: (() => Promise<void>) | null;
  readonly #naming: RowNaming;

  /** `end`: closes the pool when keepsake created it. */
  constructor(
    table: SessionTable<Client>,
    connections: LockConnections<Client>,
    tableName: TableName,
    context: DriverContext,
    end: (() => Promise<void>) | null,
    naming: RowNaming = PLAIN_NAMING,
  ) {
    this.#table = table;
    this.#connections = connections;
    this.#tableName = tableName;
    this.#context = context;
    this.#end = end;
    this.#naming = naming;
  }

  async lockAndRead(key: SessionKey, token: string): Promise<LockAttempt> {
    const row = this.#rowKey(key);
    const slot = slotOf(row);
    if (this.#held.heldBy(slot, token) !== undefined) {
      // An attempt of a token that already holds the lock takes nothing more: it reads again.
      const data = await this.#run(() => this.#table.peek(row, this.#liveAfter()));
      return lockedWith(isTombstone(data) ? null : data, 'the data column');
    }
    const connection = await this.#connections.pick();
    if (!this.#held.claim(slot, token, connection)) return { locked: false };
    let locked: Awaited<ReturnType<SessionTable<Client>['tryLock']>>;
    try {
      locked = await this.#run(() => this.#table.tryLock(connection, row));
    } catch (error) {
      this.#held.forget(slot, token);
      throw error;
    }
    if (locked === null) {
      this.#held.forget(slot, token);
      return { locked: false };
    }
    if (isTombstone(locked.data)) {
      await this.#clearTombstone(key, token, connection, locked.data);
      return lockedWith(null, 'the data column');
    }
    if (locked.data === null || locked.timestamp <= this.#liveAfter()) {
      return lockedWith(null, 'the data column');
    }
    // The timestamp is in whole seconds, so this is up to a second short: a touch comes early, never late.
    const expiresInMs =
      (locked.timestamp + this.#context.lifetimeSeconds) * 1000 - this.#context.clock();
    return lockedWith(locked.data, 'the data column', expiresInMs);
  }

  async writeAndUnlock(
    key: SessionKey,
    token: string,
    payload: string,
    lifetimeSeconds: number,
  ): Promise<boolean> {
    const data = Buffer.from(payload, 'utf8');
    const timestamp = this.#timestamp(lifetimeSeconds);
    const ended = await this.#ending(key, token, (connection, row) =>
      this.#table.write(connection, row, data, timestamp),
    );
    return ended === true;
  }

  async touchAndUnlock(
    key: SessionKey,
    token: string,
    lifetimeSeconds: number,
  ): Promise<TouchOutcome> {
    const timestamp = this.#timestamp(lifetimeSeconds);
    const outcome = await this.#ending(
      key,
      token,
      (connection, row) => this.#table.touch(connection, row, timestamp, this.#liveAfter()),
      (touched) => touched !== 'missing',
    );
    return outcome === undefined || outcome === 'revoked' ? 'fenced' : outcome;
  }

  async destroyAndUnlock(key: SessionKey, token: string): Promise<boolean> {
    const ended = await this.#ending(key, token, (connection, row) =>
      this.#table.destroy(connection, row),
    );
    return ended === true;
  }

  /**
   * Releases `token`'s lock. It never leaves the lock held on a live connection: when even a plain
   * unlock fails, the connection is closed, which releases every lock it holds (their requests
   * then cannot save, as after any lost connection).
   */
  async unlock(key: SessionKey, token: string, discard: boolean): Promise<void> {
    const row = this.#rowKey(key);
    const slot = slotOf(row);
    const held = this.#held.heldBy(slot, token);
    if (held === undefined) return;
    const { connection } = held;
    try {
      if (discard) {
        await this.#run(() =>
          this.#table
            .discard(connection, row, this.#liveAfter())
            .catch(() => this.#table.unlock(connection, row)),
        );
      } else {
        await this.#table.unlock(connection, row);
      }
    } catch (error) {
      if (connection.alive) {
        this.#context.logger.warn(
          `keepsake: releasing the lock of session ${key.id.slice(0, 8)}… failed (${error instanceof Error ? error.message : String(error)}); closing its lock connection, which releases it`,
        );
        await connection.close().catch(() => {});
      }
    } finally {
      this.#held.forget(slot, token);
    }
  }

  /**
   * A session's lock is another connection's named lock, which this call can neither take nor
   * break, so the holder is fenced by the data: the row becomes a tombstone (see tombstone.ts),
   * written without the lock, which every write, touch and destroy refuses to change (they answer
   * false or 'fenced' and release the lock). The next holder of the lock reads the tombstone as no
   * session and deletes it under that lock before anything else. A named lock is released only by
   * its holder or with its connection, after the connection's last statement, so when the next
   * holder has it no statement of an earlier holder can still be in flight to undo the deletion.
   */
  async revoke(key: SessionKey): Promise<void> {
    const now = nowSeconds(this.#context.clock);
    await this.#run(() => this.#table.revoke(this.#rowKey(key), newTombstone(), now));
  }

  /** A record that is not UTF-8 (a tombstone among them) reads as no session here; the next locked request replaces it. */
  async peek(key: SessionKey): Promise<string | null> {
    const data = await this.#run(() => this.#table.peek(this.#rowKey(key), this.#liveAfter()));
    return data === null ? null : payloadOf(data);
  }

  /**
   * GC deletes expired sessions without asking whether a request holds one: a request that read a
   * session as live and still holds it saves it with an upsert, which brings the row back (a touch
   * finds it missing and writes it), so deleting it changes nothing that request can see.
   */
  gc(maxLifetimeSeconds: number): Promise<number> {
    const idleBefore = nowSeconds(this.#context.clock) - maxLifetimeSeconds;
    return this.#run(() => this.#table.deleteIdle(idleBefore));
  }

  isTransient(error: unknown): boolean {
    return this.#table.isTransient(error);
  }

  async close(): Promise<void> {
    await this.#connections.close();
    await this.#end?.();
  }

  /**
   * Runs a call that ends `token`'s lock on the connection holding it: undefined (fenced) when the
   * lock is not `token`'s or its connection ended. `releases` says whether an outcome released the
   * lock (else it is kept, as a touch of a missing session keeps it). After a failure the lock stays
   * recorded for the core's retry or release, unless the connection ended with it, or the call
   * released it before failing.
   */
  async #ending<Outcome>(
    key: SessionKey,
    token: string,
    call: (connection: LockConnection<Client>, row: RowKey) => Promise<Outcome>,
    releases: (outcome: Outcome) => boolean = () => true,
  ): Promise<Outcome | undefined> {
    const row = this.#rowKey(key);
    const slot = slotOf(row);
    const held = this.#held.heldBy(slot, token);
    if (held === undefined) return undefined;
    const { connection } = held;
    let outcome: Outcome;
    try {
      outcome = await this.#run(() => call(connection, row));
    } catch (error) {
      if (!(await this.#stillHeld(connection, row))) this.#held.forget(slot, token);
      throw error;
    }
    if (releases(outcome)) this.#held.forget(slot, token);
    return outcome;
  }

  /**
   * Deletes the tombstone a lock attempt read, so that the new holder may store a session; when
   * that fails, the lock is released before the attempt rejects.
   */
  async #clearTombstone(
    key: SessionKey,
    token: string,
    connection: LockConnection<Client>,
    tombstone: Buffer,
  ): Promise<void> {
    try {
      await this.#run(() => this.#table.clearTombstone(connection, this.#rowKey(key), tombstone));
    } catch (error) {
      await this.unlock(key, token, false);
      throw error;
    }
  }

  /** Whether `connection` still holds the session's lock after a call on it failed. */
  async #stillHeld(connection: LockConnection<Client>, row: RowKey): Promise<boolean> {
    if (!connection.alive) return false;
    const holds = this.#table.holds?.bind(this.#table);
    if (holds === undefined) return true;
    try {
      return await holds(connection, row);
    } catch {
      // Unknown: the connection is closed, so the lock is certainly gone.
      await connection.close().catch(() => {});
      return false;
    }
  }

  #rowKey(key: SessionKey): RowKey {
    return {
      id: `${this.#naming.idPrefix}${key.id}`,
      sessionId: key.id,
      ip: key.ip === null ? NO_IP : address(key.ip),
      address: address(key.clientIp),
    };
  }

  /** Rows whose timestamp is above this (epoch seconds) are live. */
  #liveAfter(): number {
    return nowSeconds(this.#context.clock) - this.#context.lifetimeSeconds;
  }

  /** The timestamp that makes a session live for `lifetimeSeconds` from now (see the class comment). */
  #timestamp(lifetimeSeconds: number): number {
    return nowSeconds(this.#context.clock) + lifetimeSeconds - this.#context.lifetimeSeconds;
  }

  /** Runs statements, saying how to recreate a table that went missing since opening. */
  async #run<Result>(statement: () => Promise<Result>): Promise<Result> {
    try {
      return await statement();
    } catch (error) {
      if (!this.#table.isMissingTable(error)) throw error;
      const name = tableText(this.#tableName);
      const recipe = tableRecipe(
        this.#naming.layout,
        this.#table.dialect,
        this.#tableName,
        this.#context.matchIP,
      );
      throw new Error(
        `the session table "${name}" does not exist or lacks a column; create it with ${recipe}`,
        { cause: error },
      );
    }
  }
}
