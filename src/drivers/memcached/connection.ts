import { connect, type Socket } from 'node:net';
import { type Reply, ReplyReader } from './reply-reader.js';
import type { MemcachedServer } from './save-path.js';

/** One command: its line (without CRLF) and, for a store, the value sent after it. */
export interface Command {
  readonly line: string;
  readonly value?: Buffer;
}

/** Commands written together, answered once all their replies are in. */
interface Batch {
  readonly size: number;
  readonly replies: Reply[];
  /** performance.now() when it was written. */
  readonly sentAt: number;
  resolve(replies: Reply[]): void;
  reject(error: Error): void;
}

/** One open socket with what is in flight on it. */
interface Link {
  readonly socket: Socket;
  readonly reader: ReplyReader;
  readonly inFlight: Batch[];
  /** performance.now() when the last bytes arrived. */
  receivedAt: number;
  /** memcached's `item_size_max` (-I), when `stats settings` told it. */
  itemSizeMax: number | undefined;
  watchdog: NodeJS.Timeout | undefined;
  closed: boolean;
}

const CRLF = Buffer.from('\r\n');
/** A connection that has answered nothing for this many IO timeouts while commands waited is dropped. */
const DEAD_AFTER_TIMEOUTS = 5;

/**
 * One TCP connection to one memcached server, speaking the text protocol's meta commands. Commands
 * go out in call order and their replies come back in that order, so commands written together
 * (one socket write) cost one round trip.
 *
 * A server that stops answering is not hung up on when a call to it times out (the core bounds
 * every call by ioTimeout): what it was sent may still run when it wakes (a lock taken), and its
 * late answer, on this connection, is what lets the core give that lock back. Only when it has
 * answered nothing for five IO timeouts is the connection presumed dead (a half-open socket, a
 * host gone) and dropped, failing what waits on it; the next call connects anew.
 */
export class MemcachedConnection {
  readonly id: string;
  readonly weight: number;
  readonly #host: string;
  readonly #port: number;
  readonly #ioTimeoutMs: number;
  #link: Link | undefined;
  #connecting: Promise<Link> | undefined;
  #closed = false;

  constructor(server: MemcachedServer, ioTimeoutMs: number) {
    this.#host = server.host;
    this.#port = server.port;
    this.id = `${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`;
    this.weight = server.weight;
    this.#ioTimeoutMs = ioTimeoutMs;
  }

  /** memcached's largest item (`-I`), once a connection has asked it; undefined before, or if it would not say. */
  get itemSizeMax(): number | undefined {
    return this.#link?.itemSizeMax;
  }

  /** Writes `commands` in one socket write and answers their replies, in order. */
  send(commands: readonly Command[]): Promise<Reply[]> {
    const link = this.#link;
    if (link !== undefined && !link.closed) return this.#write(link, commands);
    return this.#connect().then((connected) => this.#write(connected, commands));
  }

  /** Hangs up; what is still in flight fails. */
  async close(): Promise<void> {
    this.#closed = true;
    const link = this.#link;
    this.#link = undefined;
    if (link !== undefined)
      this.#drop(link, new Error(`the connection to memcached at ${this.id} was closed`));
    await this.#connecting?.catch(() => {});
  }

  #write(link: Link, commands: readonly Command[]): Promise<Reply[]> {
    if (link.closed) {
      return Promise.reject(new Error(`the connection to memcached at ${this.id} was lost`));
    }
    return new Promise<Reply[]>((resolve, reject) => {
      const { socket } = link;
      socket.cork();
      for (const command of commands) {
        if (command.value === undefined) {
          socket.write(`${command.line}\r\n`, 'latin1');
        } else {
          socket.write(`${command.line}\r\n`, 'latin1');
          socket.write(command.value);
          socket.write(CRLF);
        }
      }
      socket.uncork();
      link.inFlight.push({
        size: commands.length,
        replies: [],
        sentAt: performance.now(),
        resolve,
        reject,
      });
      this.#watch(link);
    });
  }

  /** One connection attempt at a time; concurrent calls share it, and write in call order after it. */
  #connect(): Promise<Link> {
    if (this.#closed) {
      return Promise.reject(new Error(`the connection to memcached at ${this.id} was closed`));
    }
    this.#connecting ??= this.#open().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async #open(): Promise<Link> {
    const socket = connect({ host: this.#host, port: this.#port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 1_000);
    const link: Link = {
      socket,
      reader: new ReplyReader(),
      inFlight: [],
      receivedAt: performance.now(),
      itemSizeMax: undefined,
      watchdog: undefined,
      closed: false,
    };
    await new Promise<void>((resolve, reject) => {
      const fail = (error: Error) => {
        socket.destroy();
        reject(error);
      };
      socket.setTimeout(this.#ioTimeoutMs, () =>
        fail(new Error(`no connection to memcached at ${this.id} within ${this.#ioTimeoutMs} ms`)),
      );
      socket.once('error', fail);
      socket.once('connect', () => {
        socket.off('error', fail);
        socket.setTimeout(0);
        resolve();
      });
    });
    socket.on('data', (chunk: Buffer) => this.#received(link, chunk));
    socket.on('error', (error) => this.#drop(link, error));
    socket.on('close', () =>
      this.#drop(link, new Error(`memcached at ${this.id} closed the connection`)),
    );
    if (this.#closed) {
      this.#drop(link, new Error(`the connection to memcached at ${this.id} was closed`));
      throw new Error(`the connection to memcached at ${this.id} was closed`);
    }
    // The item size limit, and whether the server knows the meta commands at all (`mn`). Nothing
    // waits on this connection yet, so a server that does not answer in time is simply hung up on.
    const handshake = this.#write(link, [{ line: 'stats settings' }, { line: 'mn' }]);
    const timer = setTimeout(
      () =>
        this.#drop(
          link,
          new Error(`no answer from memcached at ${this.id} within ${this.#ioTimeoutMs} ms`),
        ),
      this.#ioTimeoutMs,
    );
    const [settings, noop] = await handshake.finally(() => clearTimeout(timer));
    if (noop?.kind !== 'meta' || noop.status !== 'MN') {
      const error = new Error(
        `memcached at ${this.id} does not know the meta commands; keepsake's memcached driver needs memcached 1.6 or newer`,
      );
      this.#drop(link, error);
      throw error;
    }
    const itemSizeMax =
      settings?.kind === 'stats' ? Number(settings.stats.get('item_size_max')) : NaN;
    if (Number.isSafeInteger(itemSizeMax) && itemSizeMax > 0) link.itemSizeMax = itemSizeMax;
    this.#link = link;
    return link;
  }

  #received(link: Link, chunk: Buffer): void {
    link.receivedAt = performance.now();
    let replies: Reply[];
    try {
      replies = link.reader.read(chunk);
    } catch (error) {
      this.#drop(link, error instanceof Error ? error : new Error(String(error)));
      return;
    }
    for (const reply of replies) {
      const batch = link.inFlight[0];
      if (batch === undefined) {
        this.#drop(link, new Error(`memcached at ${this.id} answered a command never sent`));
        return;
      }
      batch.replies.push(reply);
      if (batch.replies.length === batch.size) {
        link.inFlight.shift();
        batch.resolve(batch.replies);
      }
    }
    this.#watch(link);
  }

  /** Arms (or re-arms, or stops) the check that drops a connection silent for too long. */
  #watch(link: Link): void {
    if (link.inFlight.length === 0) {
      clearTimeout(link.watchdog);
      link.watchdog = undefined;
      return;
    }
    if (link.watchdog !== undefined) return;
    const deadAfterMs = DEAD_AFTER_TIMEOUTS * this.#ioTimeoutMs;
    const check = () => {
      link.watchdog = undefined;
      const oldest = link.inFlight[0];
      if (oldest === undefined || link.closed) return;
      const silentMs = performance.now() - Math.max(oldest.sentAt, link.receivedAt);
      if (silentMs >= deadAfterMs) {
        this.#drop(
          link,
          new Error(`memcached at ${this.id} answered nothing for ${Math.round(silentMs)} ms`),
        );
        return;
      }
      link.watchdog = setTimeout(check, deadAfterMs - silentMs);
      link.watchdog.unref();
    };
    link.watchdog = setTimeout(check, deadAfterMs);
    link.watchdog.unref();
  }

  /** Closes a link for good and fails what was in flight on it; the next call connects anew. */
  #drop(link: Link, error: Error): void {
    if (link.closed) return;
    link.closed = true;
    clearTimeout(link.watchdog);
    link.socket.destroy();
    if (this.#link === link) this.#link = undefined;
    for (const batch of link.inFlight.splice(0)) batch.reject(error);
  }
}
