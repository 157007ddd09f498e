import { ArrayHandler } from '../../src/handlers/array.js';
import type {
  HandlerSettings,
  LockedRead,
  SessionHandler,
  SessionKey,
  SessionLock,
} from '../../src/handlers/contract.js';

export interface HandlerCall {
  method: string;
  key?: SessionKey;
}

/**
 * A real array store that records every call made to it, so tests can assert what the manager asked
 * of its driver (which IDs reached it, writes vs touches, no lock for read-only requests).
 */
export class RecordingHandler implements SessionHandler {
  readonly name = 'recording';
  readonly calls: HandlerCall[] = [];
  readonly store = new ArrayHandler();
  /** When set, every read fails with this error (a store outage). */
  failReads: Error | undefined;

  #record(method: string, key?: SessionKey): void {
    this.calls.push(key === undefined ? { method } : { method, key });
  }

  count(method: string): number {
    return this.calls.filter((call) => call.method === method).length;
  }

  keysSeen(): SessionKey[] {
    return this.calls.flatMap((call) => (call.key === undefined ? [] : [call.key]));
  }

  open(settings: HandlerSettings): Promise<void> {
    this.#record('open');
    return this.store.open(settings);
  }
  read(key: SessionKey, waitMs: number): Promise<LockedRead> {
    this.#record('read', key);
    if (this.failReads !== undefined) return Promise.reject(this.failReads);
    return this.store.read(key, waitMs);
  }
  peek(key: SessionKey): Promise<string | null> {
    this.#record('peek', key);
    return this.store.peek(key);
  }
  write(key: SessionKey, lock: SessionLock, data: string): Promise<void> {
    this.#record('write', key);
    return this.store.write(key, lock, data);
  }
  updateTimestamp(key: SessionKey, lock: SessionLock, data: string): Promise<void> {
    this.#record('updateTimestamp', key);
    return this.store.updateTimestamp(key, lock, data);
  }
  close(key: SessionKey, lock: SessionLock): Promise<void> {
    this.#record('close', key);
    return this.store.close(key, lock);
  }
  destroy(key: SessionKey, lock: SessionLock | null): Promise<void> {
    this.#record('destroy', key);
    return this.store.destroy(key, lock);
  }
  validateId(key: SessionKey): Promise<boolean> {
    this.#record('validateId', key);
    return this.store.validateId(key);
  }
  gc(maxLifetimeSeconds: number): Promise<number> {
    this.#record('gc');
    return this.store.gc(maxLifetimeSeconds);
  }
  shutdown(): Promise<void> {
    this.#record('shutdown');
    return this.store.shutdown();
  }
}
