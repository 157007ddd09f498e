import { randomBytes } from 'node:crypto';

const ID_PATTERN = /^[0-9a-f]{32}$/;

/** A new session ID: 128 random bits as 32 lowercase hex characters, as CodeIgniter 4 issues. */
export function createSessionId(): string {
  return randomBytes(16).toString('hex');
}

/** Only exactly 32 lowercase hex characters are IDs; anything else from a cookie is ignored. */
export function isValidSessionId(value: unknown): value is string {
  return typeof value === 'string' && value.length === 32 && ID_PATTERN.test(value);
}

/** PHP's session.sid_bits_per_character: 4 (0-9a-f), 5 (0-9a-v) or 6 (0-9a-zA-Z,-). */
export type SessionIdBits = 4 | 5 | 6;

/** The `sessionId` option: PHP's session.sid_length and session.sid_bits_per_character. */
export interface SessionIdOptions {
  /** Characters per ID, 22 to 256 (PHP's range); default 32. */
  readonly length?: number;
  /** Bits per character: 4 (default), 5 or 6, with PHP's alphabets. */
  readonly bitsPerCharacter?: SessionIdBits;
}

/** PHP's alphabet for session IDs (bin_to_readable): the first 2^bits characters are used. */
const PHP_ID_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,-';

const CLASSES: Record<SessionIdBits, string> = { 4: '0-9a-f', 5: '0-9a-v', 6: '0-9a-zA-Z,-' };

/** Fewer random bits than keepsake's default 32 hex characters hold are refused. */
export const MIN_SESSION_ID_BITS = 128;

/**
 * The IDs one session manager issues and accepts, in PHP's formats, so a CodeIgniter app's cookie
 * is a keepsake cookie too. An ID from a cookie counts only when it has exactly this length and
 * alphabet; whether it names a stored session is the store's answer, never the client's.
 */
export class SessionIdFormat {
  readonly length: number;
  readonly bitsPerCharacter: SessionIdBits;
  readonly #pattern: RegExp;

  constructor(length = 32, bitsPerCharacter: SessionIdBits = 4) {
    this.length = length;
    this.bitsPerCharacter = bitsPerCharacter;
    this.#pattern = new RegExp(`^[${CLASSES[bitsPerCharacter]}]{${length}}$`);
  }

  /** A new ID: `length` characters of `bitsPerCharacter` random bits each, as PHP makes them. */
  create(): string {
    if (this.bitsPerCharacter === 4 && this.length === 32) return createSessionId();
    const bits = this.bitsPerCharacter;
    const bytes = randomBytes(Math.ceil((this.length * bits) / 8));
    const mask = (1 << bits) - 1;
    let id = '';
    let buffer = 0;
    let buffered = 0;
    let next = 0;
    while (id.length < this.length) {
      if (buffered < bits) {
        buffer = (buffer << 8) | (bytes[next++] ?? 0);
        buffered += 8;
      }
      buffered -= bits;
      id += PHP_ID_ALPHABET[(buffer >> buffered) & mask];
      buffer &= (1 << buffered) - 1;
    }
    return id;
  }

  /** Whether a cookie value has this format (and so may be looked up in the store). */
  isValid(value: unknown): value is string {
    return typeof value === 'string' && value.length === this.length && this.#pattern.test(value);
  }
}

/** keepsake's default: 32 lowercase hex characters. */
export const DEFAULT_SESSION_ID_FORMAT = new SessionIdFormat();

/**
 * Any ID PHP can issue (22-256 characters of its widest alphabet): what a store in CodeIgniter's
 * layout accepts as a key, since file names, Redis keys and rows are shared with PHP.
 */
const ANY_PHP_ID = /^[0-9a-zA-Z,-]{22,256}$/;

export function isPhpSessionId(value: unknown): value is string {
  return typeof value === 'string' && ANY_PHP_ID.test(value);
}
