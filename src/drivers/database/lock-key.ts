import { createHash } from 'node:crypto';
import type { SqlDialect } from './schema.js';
import type { RowKey } from './session-table.js';

/**
 * Whose names the session locks take. 'keepsake': a 64-bit key (PostgreSQL) or a 160-bit name
 * (MySQL) hashed from the stored ID (the table's ID prefix included) and IP. 'codeigniter': the keys CodeIgniter 4's
 * DatabaseHandler locks, `pg_advisory_lock(hashtext(id))` (with `hashtext(ip)` as the second key
 * under matchIP) and `GET_LOCK(md5(id), …)` (`md5(id . '_' . ip)` under matchIP), so that keepsake
 * and CodeIgniter would exclude each other on a shared table.
 */
export type LockKeyScheme = 'keepsake' | 'codeigniter';

/**
 * A session's advisory lock on PostgreSQL: the lock functions' arguments, which read `values` as
 * $1, $2…. The arguments are the same for every session of a scheme, so the statements are too.
 */
export interface PostgresLockKey {
  readonly arguments: string;
  readonly values: readonly string[];
}

/** A session's named lock on MySQL/MariaDB (GET_LOCK names are server-wide, at most 64 characters). */
export interface MysqlLockKey {
  readonly name: string;
}

/** The lock a session's requests take: every statement that locks or unlocks asks this function. */
export function sessionLockKey(
  dialect: 'postgres',
  scheme: LockKeyScheme,
  matchIP: boolean,
  key: RowKey,
): PostgresLockKey;
export function sessionLockKey(
  dialect: 'mysql',
  scheme: LockKeyScheme,
  matchIP: boolean,
  key: RowKey,
): MysqlLockKey;
export function sessionLockKey(
  dialect: SqlDialect,
  scheme: LockKeyScheme,
  matchIP: boolean,
  key: RowKey,
): PostgresLockKey | MysqlLockKey {
  if (scheme === 'codeigniter') {
    // CodeIgniter 4.3+ stores `<cookieName>:<id>`, and still locks the bare ID.
    const id = key.sessionId ?? key.id;
    if (dialect === 'postgres') {
      return matchIP
        ? { arguments: 'hashtext($1), hashtext($2)', values: [id, key.ip] }
        : { arguments: 'hashtext($1)', values: [id] };
    }
    const name = matchIP ? `${id}_${key.ip}` : id;
    return { name: createHash('md5').update(name).digest('hex') };
  }
  // The stored ID, prefix included: two prefixes sharing a table lock apart.
  const digest = createHash('sha256').update(`keepsake\n${key.id}\n${key.ip}`).digest();
  // The one-bigint form: with 64 bits, two sessions sharing a key (and so waiting for each other)
  // are as likely as two equal 64-bit random numbers among the locks held at one moment.
  if (dialect === 'postgres') {
    return { arguments: '$1::bigint', values: [digest.readBigInt64BE(0).toString()] };
  }
  return { name: `keepsake:${digest.toString('hex').slice(0, 40)}` };
}
