import { createHash } from 'node:crypto';

/** A Lua script and its SHA1, for EVALSHA with an EVAL fallback. */
export interface RedisScript {
  readonly name: string;
  readonly source: string;
  readonly sha: string;
}

function script(name: string, source: string): RedisScript {
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}

/**
 * KEYS: session data, its lock. ARGV: lock token, lock TTL (ms).
 * Takes the lock and reads the data in one round trip: `{1, data, '', ms left to live}`,
 * `{1, false}` when there is none, `{1, false, type}` when the data key holds another Redis type
 * (a corrupt record), or `{0}` while another request holds the lock.
 */
export const LOCK_AND_READ = script(
  'lock-and-read',
  `if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
local read = redis.pcall('GET', KEYS[1])
if type(read) == 'table' and read.err then
  return {1, false, redis.call('TYPE', KEYS[1]).ok}
end
if read then return {1, read, '', redis.call('PTTL', KEYS[1])} end
return {1, false}`,
);

/**
 * KEYS: session data, its lock. ARGV: lock token, mode, lifetime (s), payload.
 * Every mode acts only while the lock still holds our token, and answers 0 otherwise (the lock
 * expired and may be someone else's: nothing is changed). Modes: 'write' stores the payload,
 * 'touch' restarts the data's TTL, 'destroy' deletes the data, 'unlock' only releases. Answers 1
 * when done and unlocked, 2 when 'touch' found no data (the lock is kept, for the write that follows).
 */
export const FINISH = script(
  'finish',
  `if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local mode = ARGV[2]
if mode == 'write' then
  redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[3])
elseif mode == 'touch' then
  if redis.call('EXPIRE', KEYS[1], ARGV[3]) == 0 then return 2 end
elseif mode == 'destroy' then
  redis.call('DEL', KEYS[1])
end
redis.call('DEL', KEYS[2])
return 1`,
);

/** KEYS: the lock. ARGV: lock token, lock TTL (ms). Extends the lock while it holds our token: 1, else 0. */
export const RENEW_LOCK = script(
  'renew-lock',
  `if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`,
);

/**
 * KEYS: session data, its lock. ARGV: '1' when CodeIgniter may hold the lock, else '0'.
 * Ends the session whoever holds its lock: deletes the data and the lock, so the holder's token
 * matches nothing and FINISH refuses its write, touch or delete. A lock holding only digits is
 * CodeIgniter's (it stores time(); a keepsake token is random base64url): it is left in place and
 * the script answers 2 (see RedisStore.revoke); otherwise 1.
 */
export const REVOKE = script(
  'revoke',
  `redis.call('DEL', KEYS[1])
if ARGV[1] == '1' then
  local holder = redis.call('GET', KEYS[2])
  if holder and string.match(holder, '^%d+$') then return 2 end
end
redis.call('DEL', KEYS[2])
return 1`,
);
