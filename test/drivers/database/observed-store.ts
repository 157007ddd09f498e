import type {
  LockAttempt,
  SessionDriver,
  SessionKey,
  SessionStore,
  TouchOutcome,
} from '../../../src/drivers/contract.js';

/** A call of the real store that failed, and how. */
export interface StoreFailure {
  readonly method: string;
  readonly error: unknown;
}

/**
 * A store that forwards every call to the real one and records each failure before passing it on
 * (after awaiting `onFailure`, so a test can act between a failed attempt and the core's retry).
 */
class ObservedStore implements SessionStore {
  readonly #inner: SessionStore;
  readonly #failures: StoreFailure[];
  readonly #onFailure: (failure: StoreFailure) => Promise<void>;

  constructor(
    inner: SessionStore,
    failures: StoreFailure[],
    onFailure: (failure: StoreFailure) => Promise<void>,
  ) {
    this.#inner = inner;
    this.#failures = failures;
    this.#onFailure = onFailure;
    const { renewLock, gc, isTransient } = inner;
    if (renewLock !== undefined) {
      this.renewLock = (key, token) =>
        this.#observe('renewLock', () => renewLock.call(inner, key, token));
    }
    if (gc !== undefined) {
      this.gc = (maxLifetimeSeconds) =>
        this.#observe('gc', () => gc.call(inner, maxLifetimeSeconds));
    }
    if (isTransient !== undefined) this.isTransient = (error) => isTransient.call(inner, error);
  }

  renewLock?: (key: SessionKey, token: string) => Promise<boolean>;
  gc?: (maxLifetimeSeconds: number) => Promise<number>;
  isTransient?: (error: unknown) => boolean;

  lockAndRead(key: SessionKey, token: string): Promise<LockAttempt> {
    return this.#observe('lockAndRead', () => this.#inner.lockAndRead(key, token));
  }
  writeAndUnlock(key: SessionKey, token: string, payload: string, lifetime: number) {
    return this.#observe('writeAndUnlock', () =>
      this.#inner.writeAndUnlock(key, token, payload, lifetime),
    );
  }
  touchAndUnlock(key: SessionKey, token: string, lifetime: number): Promise<TouchOutcome> {
    return this.#observe('touchAndUnlock', () => this.#inner.touchAndUnlock(key, token, lifetime));
  }
  destroyAndUnlock(key: SessionKey, token: string): Promise<boolean> {
    return this.#observe('destroyAndUnlock', () => this.#inner.destroyAndUnlock(key, token));
  }
  unlock(key: SessionKey, token: string, discard: boolean): Promise<void> {
    return this.#observe('unlock', () => this.#inner.unlock(key, token, discard));
  }
  peek(key: SessionKey): Promise<string | null> {
    return this.#observe('peek', () => this.#inner.peek(key));
  }
  close(): Promise<void> {
    return this.#inner.close();
  }

  async #observe<Result>(method: string, call: () => Promise<Result>): Promise<Result> {
    try {
      return await call();
    } catch (error) {
      const failure = { method, error };
      this.#failures.push(failure);
      await this.#onFailure(failure);
      throw error;
    }
  }
}

/** `driver` with its store observed: every failed call lands in `failures`. */
export function observedDriver(
  driver: SessionDriver,
  failures: StoreFailure[],
  onFailure: (failure: StoreFailure) => Promise<void> = async () => {},
): SessionDriver {
  return {
    name: driver.name,
    async open(context) {
      return new ObservedStore(await driver.open(context), failures, onFailure);
    },
  };
}
