/** memcached reads an exptime above 30 days as an absolute Unix time. */
const RELATIVE_EXPTIME_LIMIT = 30 * 24 * 3600;

/**
 * A session lifetime as memcached's exptime: seconds, at least 1 (0 would mean "never expires"),
 * and above 30 days the absolute Unix time, from the wall clock because memcached compares it with
 * its own clock, not with keepsake's injectable one.
 */
export function exptime(lifetimeSeconds: number): number {
  const seconds = Math.max(1, Math.ceil(lifetimeSeconds));
  if (seconds <= RELATIVE_EXPTIME_LIMIT) return seconds;
  return Math.floor(Date.now() / 1000) + seconds;
}

/**
 * The lock item's TTL: lockTtl rounded up to whole seconds, plus one. memcached's clock ticks once
 * a second, so an item set for N seconds may vanish after N - 1 seconds and a little; the extra
 * second makes the item outlive the core's lease of lockTtl, counted from when the lock was sent.
 */
export function lockItemSeconds(lockTtlMs: number): number {
  return Math.ceil(lockTtlMs / 1000) + 1;
}
