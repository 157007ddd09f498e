/**
 * What a lock item of keepsake's client holds: `<expiresAtMs>:<token>`, the wall-clock time (ms
 * since the epoch) after which another request may take the lock over, and whose lock it is.
 * memcached's TTLs count whole seconds, so the item itself lives longer (lockItemSeconds); the
 * time in the value is what lets a lock be taken over lockTtl after it was last set, to the
 * millisecond, by any process whose clock is in sync.
 */
export interface LockValue {
  readonly expiresAtMs: number;
  readonly token: string;
}

export function encodeLockValue(lock: LockValue): Buffer {
  return Buffer.from(`${lock.expiresAtMs}:${lock.token}`, 'utf8');
}

/** The lock in `bytes`; undefined for anything else (a lock written by another client or version). */
export function decodeLockValue(bytes: Buffer): LockValue | undefined {
  const text = bytes.toString('utf8');
  const separator = text.indexOf(':');
  if (separator < 1) return undefined;
  const expiresAtMs = Number(text.slice(0, separator));
  if (!Number.isSafeInteger(expiresAtMs)) return undefined;
  return { expiresAtMs, token: text.slice(separator + 1) };
}
