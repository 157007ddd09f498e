import { randomBytes } from 'node:crypto';

/**
 * How a revoked session's row begins. No payload can: payloads are stored as UTF-8, where the byte
 * 0xFF never occurs; the text after it keeps other bytes that are not UTF-8 (a damaged row) from
 * reading as a revocation. The statements test it in SQL (`tombstoneSql`).
 */
const TOMBSTONE_PREFIX = Buffer.concat([
  Buffer.of(0xff),
  Buffer.from('keepsake:revoked:', 'ascii'),
]);

/**
 * What a revocation stores in a session's data column: the prefix, then random bytes, so that the
 * holder that clears a tombstone clears only the one it read, never a later revocation's.
 */
export function newTombstone(): Buffer {
  return Buffer.concat([TOMBSTONE_PREFIX, randomBytes(8)]);
}

export function isTombstone(data: Buffer | null): data is Buffer {
  return data?.subarray(0, TOMBSTONE_PREFIX.length).equals(TOMBSTONE_PREFIX) === true;
}

/** The SQL condition that `data` is a tombstone: its first bytes are the prefix, as a hex literal. */
export function tombstoneSql(dialect: 'postgres' | 'mysql', data: string): string {
  const hex = TOMBSTONE_PREFIX.toString('hex');
  const length = TOMBSTONE_PREFIX.length;
  return dialect === 'postgres'
    ? `(substring(${data} from 1 for ${length}) = '\\x${hex}'::bytea)`
    : `(LEFT(${data}, ${length}) = X'${hex}')`;
}
