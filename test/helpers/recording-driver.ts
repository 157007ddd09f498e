import { array } from '../../src/drivers/array.js';
import type { SessionDriver } from '../../src/drivers/contract.js';
import { type FaultyStore, faultyDriver } from '../../src/testing/faulty-store.js';

/**
 * A real array store that records every call the core makes to it and can be made to fail or slow
 * down, so tests can assert what the core asked of its driver (which IDs reached it, writes vs
 * touches, no lock for read-only requests) and what it does when the store fails.
 */
export class RecordingDriver {
  readonly driver: SessionDriver;
  readonly #stores: FaultyStore[] = [];

  constructor(inner: SessionDriver = array()) {
    this.driver = faultyDriver(inner, this.#stores);
  }

  /** The store the manager opened (the last one, if several managers share this driver). */
  get store(): FaultyStore {
    const opened = this.#stores.at(-1);
    if (opened === undefined) throw new Error('no manager has opened this driver yet');
    return opened;
  }

  count(method: FaultyStore['calls'][number]['method']): number {
    if (this.#stores.length === 0) return 0;
    return this.store.calls.filter((call) => call.method === method).length;
  }

  keysSeen() {
    return this.#stores.flatMap((store) => store.keysSeen());
  }

  /** Every lock attempt and unlocked read fails with `error` (a store outage); undefined ends it. */
  set failReads(error: Error | undefined) {
    this.#setFault(
      ['lockAndRead', 'peek'],
      error === undefined ? undefined : { kind: 'throw', error },
    );
  }

  /** Every write fails with `error`; undefined ends it. */
  set failWrites(error: Error | undefined) {
    this.#setFault(['writeAndUnlock'], error === undefined ? undefined : { kind: 'throw', error });
  }

  /** Every write reaches the store `ms` late. */
  set writeDelayMs(ms: number) {
    this.#setFault(['writeAndUnlock'], ms === 0 ? undefined : { kind: 'delay', ms });
  }

  #setFault(
    methods: FaultyStore['calls'][number]['method'][],
    fault: Parameters<FaultyStore['methodFaults']['set']>[1] | undefined,
  ): void {
    for (const method of methods) {
      if (fault === undefined) this.store.methodFaults.delete(method);
      else this.store.methodFaults.set(method, fault);
    }
  }
}
