import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { isPhpSessionId, isValidSessionId } from '../../id.js';
import type { SessionKey } from '../contract.js';

const HEX32 = '[0-9a-f]{32}';
/** Any ID PHP issues (session.sid_length 22–256, up to 6 bits per character). */
const PHP_ID = '[0-9a-zA-Z,-]{22,256}';

/** Which IDs a file name may be built from: keepsake's own, or any PHP issues (CodeIgniter's layout). */
export type SessionFileIds = 'keepsake' | 'php';

/**
 * Where one session lives on disk: `<directory>/<cookieName>[md5(ip)]<id>`, CodeIgniter's layout.
 * Only a validated ID (32 hex, or PHP's alphabet in CodeIgniter's layout; and a hash of the IP) ever reaches the name, and the joined path is
 * checked to sit directly in the session directory, so nothing from a cookie can point elsewhere.
 */
export function sessionFilePath(
  directory: string,
  cookieName: string,
  key: SessionKey,
  ids: SessionFileIds = 'keepsake',
): string {
  if (!(ids === 'php' ? isPhpSessionId(key.id) : isValidSessionId(key.id))) {
    throw new Error('keepsake: refusing a session file name that is not built from a valid ID.');
  }
  const ipPart = key.ip === null ? '' : createHash('md5').update(key.ip).digest('hex');
  const path = join(directory, `${cookieName}${ipPart}${key.id}`);
  if (dirname(path) !== directory) {
    throw new Error(
      `keepsake: refusing session file ${JSON.stringify(path)} outside the session directory.`,
    );
  }
  return path;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The directory entries that belong to this driver (with or without matchIP's hash), by kind. */
export interface SessionFileNames {
  /** A session's data file. */
  readonly session: RegExp;
  /** A temporary file left by a write that never reached its rename (the writer crashed). */
  readonly temporary: RegExp;
  /** A lock directory of the mkdir fallback, or one a takeover moved aside. */
  readonly lockDirectory: RegExp;
}

/**
 * GC matches both layouts (with and without the IP hash), so switching matchIP does not strand old
 * files forever as it does in CodeIgniter; other cookie names' files are never touched.
 */
export function sessionFileNames(
  cookieName: string,
  ids: SessionFileIds = 'keepsake',
): SessionFileNames {
  const base = `${escapeRegExp(cookieName)}(?:${HEX32})?${ids === 'php' ? PHP_ID : HEX32}`;
  return {
    session: new RegExp(`^${base}$`),
    temporary: new RegExp(`^${base}\\.[0-9a-f]{16}\\.tmp$`),
    lockDirectory: new RegExp(`^${base}\\.lock(?:\\.[0-9a-f]{16}\\.stale)?$`),
  };
}
