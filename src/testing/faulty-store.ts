import type {
  LockAttempt,
  SessionDriver,
  SessionKey,
  SessionStore,
  TouchOutcome,
} from '../drivers/contract.js';

type StoreMethod = Exclude<keyof SessionStore, 'renewLock' | 'waitForUnlock' | 'isTransient'>;

/** What to do to one call of the store under test. */
export type Fault =
  | { readonly kind: 'throw'; readonly error: Error }
  /** Let the call reach the store only after `ms` (a frozen store, a slow network). */
  | { readonly kind: 'delay'; readonly ms: number };

/**
 * A store that forwards every call to a real one, records which sessions each call was about, and
 * injects a fault into chosen calls: a throw, or a delay before the call reaches the store. For
 * testing what the core does when a store fails at each step.
 */
export class FaultyStore implements SessionStore {
  readonly inner: SessionStore;
  readonly calls: { readonly method: StoreMethod; readonly key?: SessionKey }[] = [];
  /** Faults by the ordinal (1-based) of the call they hit, counted over every method. */
  readonly faults = new Map<number, Fault>();
  /** Faults for every call of one method. */
  readonly methodFaults = new Map<StoreMethod, Fault>();

  constructor(inner: SessionStore) {
    this.inner = inner;
    if (inner.renewLock !== undefined) {
      const renew = inner.renewLock.bind(inner);
      this.renewLock = (key, token) => renew(key, token);
    }
    if (inner.gc !== undefined) {
      const gc = inner.gc.bind(inner);
      this.gc = (maxLifetimeSeconds) => {
        this.calls.push({ method: 'gc' });
        return gc(maxLifetimeSeconds);
      };
    }
    if (inner.revoke !== undefined) {
      const revoke = inner.revoke.bind(inner);
      this.revoke = (key) => this.#run('revoke', key, () => revoke(key));
    }
    if (inner.isTransient !== undefined) this.isTransient = inner.isTransient.bind(inner);
    if (inner.waitForUnlock !== undefined) this.waitForUnlock = inner.waitForUnlock.bind(inner);
  }

  renewLock?: (key: SessionKey, token: string) => Promise<boolean>;
  gc?: (maxLifetimeSeconds: number) => Promise<number>;
  revoke?: (key: SessionKey) => Promise<void>;
  isTransient?: (error: unknown) => boolean;
  waitForUnlock?: (key: SessionKey, maxWaitMs: number) => Promise<void>;

  /** Every session key the core asked about, without repeats. */
  keysSeen(): SessionKey[] {
    const seen = new Map<string, SessionKey>();
    for (const { key } of this.calls) if (key !== undefined) seen.set(`${key.id}@${key.ip}`, key);
    return [...seen.values()];
  }

  lockAndRead(key: SessionKey, token: string): Promise<LockAttempt> {
    return this.#run('lockAndRead', key, () => this.inner.lockAndRead(key, token));
  }
  writeAndUnlock(key: SessionKey, token: string, payload: string, lifetime: number) {
    return this.#run('writeAndUnlock', key, () =>
      this.inner.writeAndUnlock(key, token, payload, lifetime),
    );
  }
  touchAndUnlock(key: SessionKey, token: string, lifetime: number): Promise<TouchOutcome> {
    return this.#run('touchAndUnlock', key, () => this.inner.touchAndUnlock(key, token, lifetime));
  }
  destroyAndUnlock(key: SessionKey, token: string): Promise<boolean> {
    return this.#run('destroyAndUnlock', key, () => this.inner.destroyAndUnlock(key, token));
  }
  unlock(key: SessionKey, token: string, discard: boolean): Promise<void> {
    return this.#run('unlock', key, () => this.inner.unlock(key, token, discard));
  }
  peek(key: SessionKey): Promise<string | null> {
    return this.#run('peek', key, () => this.inner.peek(key));
  }
  close(): Promise<void> {
    return this.inner.close();
  }

  async #run<Result>(
    method: StoreMethod,
    key: SessionKey,
    call: () => Promise<Result>,
  ): Promise<Result> {
    this.calls.push({ method, key });
    const fault = this.faults.get(this.calls.length) ?? this.methodFaults.get(method);
    if (fault?.kind === 'throw') throw fault.error;
    if (fault?.kind === 'delay') await new Promise((resolve) => setTimeout(resolve, fault.ms));
    return call();
  }
}

/** A driver whose store is a FaultyStore around the store of `driver`; `stores` collects them. */
export function faultyDriver(
  driver: SessionDriver,
  stores: FaultyStore[],
  setUp: (store: FaultyStore) => void = () => {},
): SessionDriver {
  return {
    name: driver.name,
    ...(driver.maxPayloadBytes === undefined ? {} : { maxPayloadBytes: driver.maxPayloadBytes }),
    async open(context) {
      const store = new FaultyStore(await driver.open(context));
      setUp(store);
      stores.push(store);
      return store;
    },
  };
}
