/** A session lock this process holds: whose token it is, and the connection the database ties it to. */
export interface HeldLock<Connection> {
  readonly token: string;
  readonly connection: Connection;
}

/**
 * The session locks this process holds (or is taking), by storage slot. The database only knows
 * which connection holds a named lock, and takes it again for whoever asks on that connection
 * (PostgreSQL's and MySQL's named locks are re-entrant): this record tells two requests of one
 * process apart. A lock counts as held while its connection lives; once the connection ended, the
 * database has released it, and only a new lock on a live connection may change the session.
 */
export class HeldLocks<Connection extends { readonly alive: boolean }> {
  readonly #bySlot = new Map<string, HeldLock<Connection>>();

  /** Records `token` as taking the slot's lock on `connection`; false while another token holds it. */
  claim(slot: string, token: string, connection: Connection): boolean {
    const current = this.#bySlot.get(slot);
    if (current?.connection.alive) return false;
    this.#bySlot.set(slot, { token, connection });
    return true;
  }

  /** The lock `token` holds on the slot, if its connection is still alive. */
  heldBy(slot: string, token: string): HeldLock<Connection> | undefined {
    const current = this.#bySlot.get(slot);
    if (current === undefined || current.token !== token) return undefined;
    if (current.connection.alive) return current;
    this.#bySlot.delete(slot);
    return undefined;
  }

  /** Forgets `token`'s lock on the slot: it was released, or never taken. */
  forget(slot: string, token: string): void {
    if (this.#bySlot.get(slot)?.token === token) this.#bySlot.delete(slot);
  }
}
