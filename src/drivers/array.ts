import { SessionConfigError } from '../errors.js';
import type {
  DriverContext,
  LockAttempt,
  SessionDriver,
  SessionKey,
  SessionStore,
  TouchOutcome,
} from './contract.js';

export interface ArrayDriverOptions {
  /** At most this many sessions are kept (expired ones go first, then the least recently written). Default 100 000. */
  readonly maxSessions?: number;
}

interface Entry {
  readonly payload: string;
  expiresAtMs: number;
}

interface Lock {
  readonly token: string;
  /** performance.now() after which another request may take it. */
  expiresAt: number;
}

function slotOf(key: SessionKey): string {
  return key.ip === null ? key.id : `${key.id}@${key.ip}`;
}

/**
 * Sessions in this process's memory: for tests and single-process apps. The store primitives over
 * two Maps — the shortest complete driver, and a model for writing your own.
 */
class ArrayStore implements SessionStore {
  readonly #entries: Map<string, Entry>;
  readonly #locks: Map<string, Lock>;
  readonly #context: DriverContext;
  readonly #maxSessions: number;

  constructor(
    context: DriverContext,
    maxSessions: number,
    entries: Map<string, Entry>,
    locks: Map<string, Lock>,
  ) {
    this.#context = context;
    this.#maxSessions = maxSessions;
    this.#entries = entries;
    this.#locks = locks;
  }

  get size(): number {
    return this.#entries.size;
  }

  async lockAndRead(key: SessionKey, token: string): Promise<LockAttempt> {
    const slot = slotOf(key);
    const held = this.#locks.get(slot);
    if (held !== undefined && held.expiresAt > performance.now()) return { locked: false };
    this.#locks.set(slot, { token, expiresAt: performance.now() + this.#context.lockTtlMs });
    const entry = this.#live(slot);
    return entry === undefined
      ? { locked: true, payload: null }
      : {
          locked: true,
          payload: entry.payload,
          expiresInMs: entry.expiresAtMs - this.#context.clock(),
        };
  }

  async renewLock(key: SessionKey, token: string): Promise<boolean> {
    const lock = this.#ownLock(slotOf(key), token);
    if (lock === undefined) return false;
    lock.expiresAt = performance.now() + this.#context.lockTtlMs;
    return true;
  }

  async writeAndUnlock(
    key: SessionKey,
    token: string,
    payload: string,
    lifetimeSeconds: number,
  ): Promise<boolean> {
    const slot = slotOf(key);
    if (this.#ownLock(slot, token) === undefined) return false;
    // Re-inserting keeps the map in least-recently-written order for eviction.
    this.#entries.delete(slot);
    this.#entries.set(slot, { payload, expiresAtMs: this.#expiresAt(lifetimeSeconds) });
    if (this.#entries.size > this.#maxSessions) this.#evict();
    this.#locks.delete(slot);
    return true;
  }

  async touchAndUnlock(
    key: SessionKey,
    token: string,
    lifetimeSeconds: number,
  ): Promise<TouchOutcome> {
    const slot = slotOf(key);
    if (this.#ownLock(slot, token) === undefined) return 'fenced';
    const entry = this.#live(slot);
    if (entry === undefined) return 'missing';
    entry.expiresAtMs = this.#expiresAt(lifetimeSeconds);
    this.#locks.delete(slot);
    return 'touched';
  }

  async destroyAndUnlock(key: SessionKey, token: string): Promise<boolean> {
    const slot = slotOf(key);
    if (this.#ownLock(slot, token) === undefined) return false;
    this.#entries.delete(slot);
    this.#locks.delete(slot);
    return true;
  }

  async unlock(key: SessionKey, token: string): Promise<void> {
    // A lock here leaves nothing behind, so there is nothing to discard.
    const slot = slotOf(key);
    if (this.#ownLock(slot, token) !== undefined) this.#locks.delete(slot);
  }

  async revoke(key: SessionKey): Promise<void> {
    // Without its lock entry, the holder's token matches nothing: every later call of it is fenced.
    const slot = slotOf(key);
    this.#entries.delete(slot);
    this.#locks.delete(slot);
  }

  async peek(key: SessionKey): Promise<string | null> {
    return this.#live(slotOf(key))?.payload ?? null;
  }

  async gc(maxLifetimeSeconds: number): Promise<number> {
    const now = this.#context.clock();
    const idleSince = now - maxLifetimeSeconds * 1000;
    const lifetimeMs = this.#context.lifetimeSeconds * 1000;
    let removed = 0;
    for (const [slot, entry] of this.#entries) {
      if (entry.expiresAtMs - lifetimeMs < idleSince || entry.expiresAtMs <= now) {
        this.#entries.delete(slot);
        removed += 1;
      }
    }
    return removed;
  }

  async close(): Promise<void> {
    // The memory belongs to the driver object, which other managers may still use.
  }

  #ownLock(slot: string, token: string): Lock | undefined {
    const lock = this.#locks.get(slot);
    return lock?.token === token ? lock : undefined;
  }

  #live(slot: string): Entry | undefined {
    const entry = this.#entries.get(slot);
    if (entry === undefined) return undefined;
    if (entry.expiresAtMs <= this.#context.clock()) {
      this.#entries.delete(slot);
      return undefined;
    }
    return entry;
  }

  #evict(): void {
    const now = this.#context.clock();
    for (const [slot, entry] of this.#entries) {
      if (entry.expiresAtMs <= now) this.#entries.delete(slot);
    }
    for (const slot of this.#entries.keys()) {
      if (this.#entries.size <= this.#maxSessions) break;
      this.#entries.delete(slot);
      this.#context.logger.warn(
        `keepsake: the array driver is full (maxSessions ${this.#maxSessions}); dropped the least recently written session.`,
      );
    }
  }

  #expiresAt(lifetimeSeconds: number): number {
    return this.#context.clock() + lifetimeSeconds * 1000;
  }
}

/** The array driver: sessions in this process's memory (tests, single-process apps), shared by every manager given the same driver object. */
export function array(options: ArrayDriverOptions = {}): SessionDriver {
  const maxSessions = options.maxSessions ?? 100_000;
  if (!Number.isInteger(maxSessions) || maxSessions < 1) {
    throw new SessionConfigError(
      'maxSessions',
      `the array driver keeps at most maxSessions sessions: a whole number ≥ 1, got ${String(maxSessions)}.`,
    );
  }
  // Every manager given this driver object shares its memory, as processes share a server.
  const entries = new Map<string, Entry>();
  const locks = new Map<string, Lock>();
  return {
    name: 'array',
    open: async (context) => new ArrayStore(context, maxSessions, entries, locks),
  };
}
