import type { SessionLogger } from '../../log.js';

/**
 * A database connection keepsake keeps for session locks. The database ties a named lock to the
 * connection that took it, so every lock taken on it ends when it ends (the database releases them
 * the moment the connection drops, or its process dies): the lock and every statement that
 * changes a session under it run here, and a request whose connection ended may change nothing.
 */
export class LockConnection<Client> {
  readonly client: Client;
  readonly #close: () => Promise<void>;
  #alive = true;
  #pending = 0;

  /** `close`: ends the connection (a no-op for a client the application owns). */
  constructor(client: Client, close: () => Promise<void>) {
    this.client = client;
    this.#close = close;
  }

  /** False once the connection ended: every lock it held is gone. */
  get alive(): boolean {
    return this.#alive;
  }

  /** Calls running on it now; the least busy connection takes the next lock. */
  get pending(): number {
    return this.#pending;
  }

  /** Runs statements on the connection, counted in `pending`; rejects once it has ended. */
  async run<Result>(statements: (client: Client) => Promise<Result>): Promise<Result> {
    if (!this.#alive) throw new Error('the session lock connection has closed');
    this.#pending += 1;
    try {
      return await statements(this.client);
    } finally {
      this.#pending -= 1;
    }
  }

  /** Records that the connection ended (its client reported an error or its end). */
  ended(): void {
    this.#alive = false;
  }

  /** Ends the connection, and with it every lock it holds. */
  async close(): Promise<void> {
    this.#alive = false;
    await this.#close();
  }
}

/**
 * The few lock connections of one opened store: each lock goes to the least busy live one, and
 * one that ended is replaced when the next lock is taken.
 */
export class LockConnections<Client> {
  readonly #size: number;
  readonly #open: () => Promise<LockConnection<Client>>;
  readonly #logger: SessionLogger;
  #live: LockConnection<Client>[] = [];
  #opening: Promise<LockConnection<Client>> | undefined;
  #closed = false;

  constructor(size: number, open: () => Promise<LockConnection<Client>>, logger: SessionLogger) {
    this.#size = size;
    this.#open = open;
    this.#logger = logger;
  }

  /** Opens every connection now, so that a store that cannot get them fails when it opens. */
  async fill(): Promise<void> {
    while (this.#live.length < this.#size) await this.#openOne();
  }

  /** The live connection with the fewest calls running; opens a replacement for one that ended. */
  async pick(): Promise<LockConnection<Client>> {
    if (this.#closed) throw new Error('the session store is closed');
    this.#live = this.#live.filter((connection) => connection.alive);
    if (this.#live.length < this.#size && this.#opening === undefined) {
      const opening = this.#openOne();
      // With other connections alive the lock need not wait for this one.
      if (this.#live.length > 0) {
        opening.catch((error: unknown) =>
          this.#logger.debug(
            `keepsake: opening a session lock connection failed (${error instanceof Error ? error.message : String(error)}); the next lock tries again`,
          ),
        );
      }
    }
    if (this.#live.length === 0 && this.#opening !== undefined) return this.#opening;
    return this.#live.reduce((least, connection) =>
      connection.pending < least.pending ? connection : least,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    const opening = this.#opening;
    const live = this.#live.splice(0);
    await Promise.all([
      ...live.map((connection) => connection.close().catch(() => {})),
      opening?.then(
        (connection) => connection.close().catch(() => {}),
        () => {},
      ),
    ]);
  }

  #openOne(): Promise<LockConnection<Client>> {
    const opening = this.#open().then(
      async (connection) => {
        this.#opening = undefined;
        if (this.#closed) {
          await connection.close().catch(() => {});
          throw new Error('the session store is closed');
        }
        this.#live.push(connection);
        return connection;
      },
      (error: unknown) => {
        this.#opening = undefined;
        throw error;
      },
    );
    this.#opening = opening;
    return opening;
  }
}
