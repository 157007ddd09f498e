import type { ResolvedConfig } from '../config.js';
import { KeyedQueue } from '../locks.js';
import type {
  HandlerSettings,
  LockedRead,
  SessionHandler,
  SessionKey,
  SessionLock,
} from './contract.js';

interface Entry {
  data: string;
  expiresAtMs: number;
}

function slot(key: SessionKey): string {
  return key.ip === null ? key.id : `${key.id}@${key.ip}`;
}

/**
 * Sessions in this process's memory: for tests and single-process apps. Bounded by `maxSessions`
 * (expired entries are swept first, then the least recently written go), so it cannot grow without limit.
 */
export class ArrayHandler implements SessionHandler {
  readonly name = 'array';
  readonly #entries = new Map<string, Entry>();
  readonly #locks = new KeyedQueue();
  readonly #releases = new Map<string, () => void>();
  readonly #maxSessions: number;
  #settings: HandlerSettings | undefined;
  #lockCounter = 0;

  constructor(options: { maxSessions?: number } = {}) {
    this.#maxSessions = options.maxSessions ?? 100_000;
  }

  /** How many sessions are held now (expired ones included until swept). */
  get size(): number {
    return this.#entries.size;
  }

  async open(settings: HandlerSettings): Promise<void> {
    this.#settings = settings;
  }

  async read(key: SessionKey, waitMs: number): Promise<LockedRead> {
    const storageKey = slot(key);
    const release =
      this.#locks.tryAcquire(storageKey) ??
      (await this.#locks.acquire(storageKey, waitMs, this.name));
    this.#lockCounter += 1;
    const token = `${storageKey}#${this.#lockCounter}`;
    this.#releases.set(token, release);
    return { data: this.#live(storageKey)?.data ?? null, lock: { token } };
  }

  async peek(key: SessionKey): Promise<string | null> {
    return this.#live(slot(key))?.data ?? null;
  }

  async write(key: SessionKey, lock: SessionLock, data: string): Promise<void> {
    this.#store(slot(key), data);
    this.#release(lock);
  }

  async updateTimestamp(key: SessionKey, lock: SessionLock, data: string): Promise<void> {
    const storageKey = slot(key);
    const entry = this.#live(storageKey);
    if (entry === undefined) this.#store(storageKey, data);
    else entry.expiresAtMs = this.#expiresAt();
    this.#release(lock);
  }

  async close(_key: SessionKey, lock: SessionLock): Promise<void> {
    this.#release(lock);
  }

  async destroy(key: SessionKey, lock: SessionLock | null): Promise<void> {
    this.#entries.delete(slot(key));
    if (lock !== null) this.#release(lock);
  }

  async validateId(key: SessionKey): Promise<boolean> {
    return this.#live(slot(key)) !== undefined;
  }

  async gc(maxLifetimeSeconds: number): Promise<number> {
    const settings = this.#requireSettings();
    const idleSince = settings.clock() - maxLifetimeSeconds * 1000;
    const lifetimeMs = settings.lifetimeSeconds * 1000;
    let removed = 0;
    for (const [storageKey, entry] of this.#entries) {
      if (entry.expiresAtMs - lifetimeMs < idleSince || entry.expiresAtMs <= settings.clock()) {
        this.#entries.delete(storageKey);
        removed += 1;
      }
    }
    return removed;
  }

  async shutdown(): Promise<void> {}

  #live(storageKey: string): Entry | undefined {
    const entry = this.#entries.get(storageKey);
    if (entry === undefined) return undefined;
    if (entry.expiresAtMs <= this.#requireSettings().clock()) {
      this.#entries.delete(storageKey);
      return undefined;
    }
    return entry;
  }

  #store(storageKey: string, data: string): void {
    // Re-inserting keeps the map in least-recently-written order for eviction.
    this.#entries.delete(storageKey);
    this.#entries.set(storageKey, { data, expiresAtMs: this.#expiresAt() });
    if (this.#entries.size > this.#maxSessions) this.#evict();
  }

  #evict(): void {
    const now = this.#requireSettings().clock();
    for (const [storageKey, entry] of this.#entries) {
      if (entry.expiresAtMs <= now) this.#entries.delete(storageKey);
    }
    for (const storageKey of this.#entries.keys()) {
      if (this.#entries.size <= this.#maxSessions) break;
      this.#entries.delete(storageKey);
      this.#requireSettings().logger.warn(
        `keepsake: the array driver is full (maxSessions ${this.#maxSessions}); dropped the least recently written session.`,
      );
    }
  }

  #expiresAt(): number {
    const settings = this.#requireSettings();
    return settings.clock() + settings.lifetimeSeconds * 1000;
  }

  #release(lock: SessionLock): void {
    const release = this.#releases.get(lock.token);
    this.#releases.delete(lock.token);
    release?.();
  }

  #requireSettings(): HandlerSettings {
    if (this.#settings === undefined)
      throw new Error('keepsake: the array handler was used before open().');
    return this.#settings;
  }
}

export function createHandler(config: ResolvedConfig): SessionHandler {
  return new ArrayHandler({ maxSessions: config.maxSessions });
}
