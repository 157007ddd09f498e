/**
 * What the driver needs from a memcached client of your own (`memcached({ client })`). Methods must
 * reject when the server cannot be reached (a miss and an outage are not the same), and a
 * multi-server client must send keys with the same `{hash tag}` to the same server, or locking
 * breaks. `exptime` is memcached's: seconds, or a Unix time when above 30 days.
 */
export interface MemcachedClient {
  get(key: string): Promise<string | undefined>;
  /** Answers whether the value was stored. */
  set(key: string, value: string, exptime: number): Promise<boolean>;
  /** Stores only when the key does not exist (atomic); false when it does. */
  add(key: string, value: string, exptime: number): Promise<boolean>;
  /** Sets a new expiry without sending the value; false when the key does not exist. */
  touch(key: string, exptime: number): Promise<boolean>;
  delete(key: string): Promise<boolean>;
}

export function isMemcachedClient(value: unknown): value is MemcachedClient {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Record<string, unknown>;
  return ['get', 'set', 'add', 'touch', 'delete'].every(
    (method) => typeof candidate[method] === 'function',
  );
}
