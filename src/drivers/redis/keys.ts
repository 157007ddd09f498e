import type { SessionKey } from '../contract.js';

/** The Redis keys of one session. */
export interface RedisSessionKeys {
  readonly data: string;
  readonly lock: string;
}

/**
 * `<prefix>[<ip>:]{<id>}` and the same with `:lock`. The braces make the ID a Cluster hash tag,
 * so both keys live in one slot and one Lua script may touch them together.
 */
export function sessionKeys(prefix: string, key: SessionKey): RedisSessionKeys {
  const data = `${prefix}${key.ip === null ? '' : `${key.ip}:`}{${key.id}}`;
  return { data, lock: `${data}:lock` };
}

/**
 * CodeIgniter's RedisHandler keys: `<prefix>[<ip>:]<id>` and the same with `:lock`. No hash tag,
 * so in a Cluster the two keys may sit in different slots: CodeIgniter's layout needs one server
 * (or Sentinel).
 */
export function codeIgniterSessionKeys(prefix: string, key: SessionKey): RedisSessionKeys {
  const data = `${prefix}${key.ip === null ? '' : `${key.ip}:`}${key.id}`;
  return { data, lock: `${data}:lock` };
}
