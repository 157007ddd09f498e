/** A meta command's answer: its status code, its return flags, and for `VA` the value's bytes. */
export interface MetaReply {
  readonly kind: 'meta';
  /** HD stored/found, VA value follows, EN miss, NS not stored, EX CAS mismatch, NF not found, MN no-op. */
  readonly status: string;
  /** The return flags as sent (`c123` → the CAS is 123); see `flagOf`. */
  readonly flags: readonly string[];
  readonly value: Buffer | undefined;
}

/** ERROR, CLIENT_ERROR … or SERVER_ERROR …: the command failed and nothing was done. */
export interface ErrorReply {
  readonly kind: 'error';
  readonly line: string;
}

/** The `STAT name value` lines of a `stats` command, up to its END. */
export interface StatsReply {
  readonly kind: 'stats';
  readonly stats: ReadonlyMap<string, string>;
}

export type Reply = MetaReply | ErrorReply | StatsReply;

/** The value of return flag `letter` (`flagOf(reply, 'c')` is the CAS), undefined when absent. */
export function flagOf(reply: MetaReply, letter: string): string | undefined {
  for (const flag of reply.flags) if (flag.startsWith(letter)) return flag.slice(1);
  return undefined;
}

const CR = 13;
const LF = 10;
/** No reply line is anywhere near this long; a longer one means the stream is not memcached's. */
const LONGEST_LINE = 64 * 1024;

/**
 * Parses memcached's replies from the bytes of one connection as they arrive, in linear time: a
 * value's bytes are copied once, straight into a buffer of the size its header announced, however
 * many chunks it comes in (re-joining everything received so far on every chunk, as `memcache`'s
 * reader does, is quadratic: 12 s for a 20 MB value).
 */
export class ReplyReader {
  /** The start of a line whose end has not arrived yet. */
  #partialLine: Buffer | undefined;
  /** The value being received: its header's flags, its bytes, how many have arrived, and of its CRLF. */
  #value:
    | { readonly flags: readonly string[]; readonly bytes: Buffer; filled: number; crlf: number }
    | undefined;
  #stats: Map<string, string> | undefined;

  /** Consumes `chunk` and answers the replies it completed, in order. Throws on bytes that are no reply. */
  read(chunk: Buffer): Reply[] {
    const replies: Reply[] = [];
    let data = chunk;
    if (this.#partialLine !== undefined) {
      data = Buffer.concat([this.#partialLine, chunk]);
      this.#partialLine = undefined;
    }
    let offset = 0;
    while (offset < data.length) {
      const value = this.#value;
      if (value !== undefined) {
        if (value.filled < value.bytes.length) {
          const copied = data.copy(value.bytes, value.filled, offset);
          value.filled += copied;
          offset += copied;
          continue;
        }
        if (data[offset] !== (value.crlf === 0 ? CR : LF)) {
          throw new Error('a value was not followed by CRLF');
        }
        offset += 1;
        value.crlf += 1;
        if (value.crlf === 2) {
          this.#value = undefined;
          replies.push({ kind: 'meta', status: 'VA', flags: value.flags, value: value.bytes });
        }
        continue;
      }
      const lineEnd = data.indexOf(LF, offset);
      if (lineEnd === -1) {
        if (data.length - offset > LONGEST_LINE) throw new Error('a reply line has no end');
        this.#partialLine = Buffer.from(data.subarray(offset));
        break;
      }
      if (lineEnd === offset || data[lineEnd - 1] !== CR) {
        throw new Error('a reply line does not end in CRLF');
      }
      const reply = this.#line(data.toString('latin1', offset, lineEnd - 1));
      offset = lineEnd + 1;
      if (reply !== undefined) replies.push(reply);
    }
    return replies;
  }

  #line(line: string): Reply | undefined {
    if (this.#stats !== undefined || line.startsWith('STAT ')) {
      const stats = this.#stats ?? new Map<string, string>();
      if (line === 'END') {
        this.#stats = undefined;
        return { kind: 'stats', stats };
      }
      const [tag, name, ...rest] = line.split(' ');
      if (tag !== 'STAT' || name === undefined) throw new Error(`unexpected stats line ${line}`);
      stats.set(name, rest.join(' '));
      this.#stats = stats;
      return undefined;
    }
    if (line === 'ERROR' || line.startsWith('CLIENT_ERROR') || line.startsWith('SERVER_ERROR')) {
      return { kind: 'error', line };
    }
    if (line === 'END') return { kind: 'stats', stats: new Map() };
    const [status = '', ...flags] = line.split(' ');
    if (status === 'VA') {
      const size = Number(flags[0]);
      if (!Number.isSafeInteger(size) || size < 0) throw new Error(`bad value size in ${line}`);
      this.#value = { flags: flags.slice(1), bytes: Buffer.allocUnsafe(size), filled: 0, crlf: 0 };
      return undefined;
    }
    if (!/^[A-Z]{2}$/.test(status)) throw new Error(`unexpected reply ${JSON.stringify(line)}`);
    return { kind: 'meta', status, flags, value: undefined };
  }
}
