/** A named lock's release, waiting to be sent with the next statement on its connection. */
export interface WaitingRelease<Lock> {
  /** The lock, as the dialect's release statement takes it. */
  readonly lock: Lock;
  /** Settles the unlock that asked for the release: sent (no error) or failed. */
  settle(error?: unknown): void;
}

/**
 * The releases each lock connection has not sent yet. A connection runs its statements one after
 * another, so a release asked for while statements run would wait behind them in any case; instead
 * of a round trip of its own it waits for the next statement sent on the connection and goes with
 * it (a lock attempt carries it in its own statement; any other statement is preceded by it), or on
 * its own the moment the connection has nothing left running. It is thus sent exactly where it would
 * have been queued, never later, and a busy connection runs one statement fewer per release.
 */
export class WaitingReleases<Connection extends object, Lock> {
  readonly #byConnection = new WeakMap<Connection, WaitingRelease<Lock>[]>();

  /** Records a release for `connection`; the promise settles once it has been sent. */
  add(connection: Connection, lock: Lock): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const settle = (error?: unknown) => (error === undefined ? resolve() : reject(error));
      const waiting = this.#byConnection.get(connection);
      if (waiting === undefined) this.#byConnection.set(connection, [{ lock, settle }]);
      else waiting.push({ lock, settle });
    });
  }

  /** Takes up to `most` of the connection's waiting releases, oldest first, for a statement to carry. */
  take(connection: Connection, most = Number.POSITIVE_INFINITY): WaitingRelease<Lock>[] {
    const waiting = this.#byConnection.get(connection);
    if (waiting === undefined || waiting.length === 0) return [];
    return waiting.splice(0, most);
  }
}
