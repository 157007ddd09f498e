import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { stat, unlink, utimes } from 'node:fs/promises';
import { payloadOfPhpSession, phpSessionOf } from '../codeigniter/payload.js';
import { SessionConfigError } from '../errors.js';
import type {
  DriverContext,
  LockAttempt,
  SessionDriver,
  SessionKey,
  SessionStore,
  TouchOutcome,
} from './contract.js';
import { chooseLockMechanism, FILE_LOCK_CHOICES, type FileLockChoice } from './file/choose-lock.js';
import { FileExpiry } from './file/expiry.js';
import { collectGarbage } from './file/gc.js';
import { errorCode, ignoringMissing } from './file/io-timeout.js';
import type { FileLockMechanism, LockedSessionFile } from './file/lock.js';
import {
  type SessionFileIds,
  type SessionFileNames,
  sessionFileNames,
  sessionFilePath,
} from './file/names.js';
import { prepareSessionDirectory, resolveSessionDirectory } from './file/save-path.js';
import {
  readBytes,
  readContent,
  replaceAtomically,
  rewriteInPlace,
  type SessionFileContent,
  withSessionFile,
} from './file/session-file.js';

export type { FileLockChoice } from './file/choose-lock.js';
export type { FileLockKind } from './file/lock.js';
export { defaultSavePath } from './file/save-path.js';

export interface FileDriverOptions {
  /** An absolute directory (created 0700 when missing). Default: `keepsake-sessions` under the OS temp directory. */
  readonly directory?: string;
  /**
   * 'auto' (default): flock through the optional `fs-ext` addon, or the mkdir/heartbeat fallback
   * when it is not installed. 'flock' fails when the driver opens without the addon; 'mkdir' forces
   * the fallback. Every process sharing a directory must use the same mechanism.
   */
  readonly lock?: FileLockChoice;
  /**
   * 'keepsake' (default): JSON payloads, written through a temporary file and rename.
   * 'codeigniter': the files of CodeIgniter 4's FileHandler, shared with a running CodeIgniter app:
   * PHP's session encoding, IDs in any of PHP's formats, and flock on the session file itself with
   * in-place writes, so PHP and Node requests on one session exclude each other. Needs flock (the
   * `fs-ext` addon).
   */
  readonly layout?: FileLayout;
}

/** How session files are written: keepsake's own way, or CodeIgniter's (see FileDriverOptions). */
export type FileLayout = 'keepsake' | 'codeigniter';

/** A session lock this store holds, by session file path. */
interface HeldSession {
  readonly token: string;
  readonly locked: LockedSessionFile;
  /** A live payload was read under this lock: there is a file to touch. */
  readonly found: boolean;
  /** CodeIgniter's layout: the PHP session data read under this lock (null: none). */
  readonly php: Buffer | null;
}

/** What a live session file holds, and its time left. */
interface LiveContent {
  readonly content: SessionFileContent;
  readonly expiresInMs: number;
  /** CodeIgniter's layout: the file's PHP session data. */
  readonly php: Buffer | null;
}

/** Temporary files younger than this are never taken for a crashed writer's leftovers. */
const TEMPORARY_FILE_MIN_AGE_MS = 10 * 60 * 1000;

/**
 * One file per session, as CodeIgniter's FileHandler, made safe for several Node processes. A
 * session is locked across processes with flock (or the mkdir fallback), written through a
 * temporary file and rename (never torn), touched rather than rewritten when unchanged, and expires
 * by its modification time (see file/expiry.ts). An empty file is a lock placeholder for a session
 * not written yet, and counts as no session.
 *
 * The mkdir lock expires unless renewed, so it can be lost by a process that stalls; every write,
 * touch, destroy and unlock first checks that the lock directory is still the one this token
 * created (held open, so no other directory can take its inode number), and does nothing
 * otherwise. Directories have no compare-and-swap, so a tiny window remains between that check and
 * the rename or unlink that follows it: a holder that stalls for longer than lockTtl exactly there
 * can still act once after another took the lock over.
 */
class FileStore implements SessionStore {
  /** Only for the mkdir lock, which expires unless renewed; a flock lasts until released. */
  readonly renewLock?: (key: SessionKey, token: string) => Promise<boolean>;
  readonly #directory: string;
  readonly #names: SessionFileNames;
  readonly #locks: FileLockMechanism;
  readonly #expiry: FileExpiry;
  readonly #context: DriverContext;
  readonly #held = new Map<string, HeldSession>();
  readonly #codeigniter: boolean;
  readonly #ids: SessionFileIds;

  constructor(
    directory: string,
    locks: FileLockMechanism,
    context: DriverContext,
    layout: FileLayout,
  ) {
    this.#directory = directory;
    this.#codeigniter = layout === 'codeigniter';
    this.#ids = this.#codeigniter ? 'php' : 'keepsake';
    this.#names = sessionFileNames(context.cookieName, this.#ids);
    this.#locks = locks;
    this.#expiry = new FileExpiry(context.clock, context.lifetimeSeconds);
    this.#context = context;
    const renew = locks.renew?.bind(locks);
    if (renew !== undefined) {
      this.renewLock = async (key, token) => {
        const held = this.#held.get(this.#path(key));
        return held?.token === token && renew(held.locked);
      };
    }
  }

  async lockAndRead(key: SessionKey, token: string): Promise<LockAttempt> {
    const path = this.#path(key);
    const locked = await this.#locks.tryLock(path, true);
    if (locked === null) return { locked: false };
    let attempt: Extract<LockAttempt, { locked: true }>;
    let php: Buffer | null;
    try {
      ({ attempt, php } = await this.#readLocked(locked));
    } catch (error) {
      // The core releases only locks it was told about: this one is released here.
      await this.#locks.release(locked).catch(() => {});
      throw error;
    }
    const previous = this.#held.get(path);
    this.#held.set(path, { token, locked, found: attempt.payload !== null, php });
    // A lock of this process that expired and was just taken over (mkdir only): its token is
    // refused from now on, and what pinned its lock directory is let go.
    if (previous !== undefined) await this.#locks.release(previous.locked).catch(() => {});
    return attempt;
  }

  async writeAndUnlock(
    key: SessionKey,
    token: string,
    payload: string,
    lifetimeSeconds: number,
  ): Promise<boolean> {
    const path = this.#path(key);
    const held = await this.#holding(path, token);
    if (held === undefined) return false;
    const mtime = this.#expiry.mtimeForWrite(lifetimeSeconds);
    if (this.#codeigniter && held.locked.handle !== null) {
      let php: Buffer;
      try {
        php = phpSessionOf(payload, held.php);
      } catch (error) {
        // What PHP cannot hold is the caller's error: the session stays as it was, unlocked.
        await this.#release(path, held);
        throw error;
      }
      await rewriteInPlace(held.locked.handle, php, mtime);
      if (!(await this.#locks.stillHeld(held.locked))) {
        // Revoked meanwhile: the file was unlinked, so the write landed on a file nobody will read.
        await this.#release(path, held);
        return false;
      }
    } else {
      await replaceAtomically(path, payload, mtime);
    }
    await this.#release(path, held);
    return true;
  }

  async touchAndUnlock(
    key: SessionKey,
    token: string,
    lifetimeSeconds: number,
  ): Promise<TouchOutcome> {
    const path = this.#path(key);
    const held = await this.#holding(path, token);
    if (held === undefined) return 'fenced';
    if (!held.found) return 'missing';
    const mtime = this.#expiry.mtimeFor(lifetimeSeconds);
    try {
      // A flock'd file is the one at the path (verified when locking): touch it through its handle.
      await (held.locked.handle === null
        ? utimes(path, mtime, mtime)
        : held.locked.handle.utimes(mtime, mtime));
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return 'missing';
      throw error;
    }
    await this.#release(path, held);
    return 'touched';
  }

  async destroyAndUnlock(key: SessionKey, token: string): Promise<boolean> {
    const path = this.#path(key);
    const held = await this.#holding(path, token);
    if (held === undefined) return false;
    await ignoringMissing(unlink(path));
    await this.#release(path, held);
    return true;
  }

  async unlock(key: SessionKey, token: string, discard: boolean): Promise<void> {
    const path = this.#path(key);
    const held = await this.#holding(path, token);
    if (held === undefined) return;
    if (discard) {
      // A placeholder or an expired file goes; a live one stays (a write may have landed after all).
      const stats = await ignoringMissing(stat(path));
      if (stats?.isFile() === true && !this.#expiry.isLive(stats)) {
        await ignoringMissing(unlink(path));
      }
    }
    await this.#release(path, held);
  }

  /**
   * Deletes the session file under its lock, taken from its holder if need be. A mkdir lock is
   * taken over (see MkdirMechanism.seize), so the holder is fenced as after a takeover. A flock
   * cannot be taken from its holder: the file is unlinked without it, so the holder's lock guards a
   * file that is no longer at the path, and every later call of it finds that out (stillHeld) and
   * does nothing. The next request creates and locks a new, empty file, and reads no session.
   *
   * An in-place write (CodeIgniter's layout) is checked again after it: one that a revocation beat
   * landed on the unlinked file and answers false. A write by rename and a touch or destroy are
   * checked only before they act, so a holder that stalls exactly between that check and its rename
   * (or unlink) can still act once after the revocation, as after a mkdir takeover.
   */
  async revoke(key: SessionKey): Promise<void> {
    const path = this.#path(key);
    // Deleted before the lock is seized as well as under it: a request that takes the lock in the
    // moment between the holder's lock directory moving aside and ours being made then reads no
    // session and starts a new one, instead of reading the revoked one and failing its save.
    await ignoringMissing(unlink(path));
    const seized = await this.#locks.seize(path);
    try {
      await ignoringMissing(unlink(path));
    } finally {
      if (seized !== null) await this.#locks.release(seized);
    }
  }

  async peek(key: SessionKey): Promise<string | null> {
    const found = await withSessionFile(this.#path(key), (handle, stats) =>
      this.#liveContent(handle, stats),
    );
    return found !== undefined && found !== null && 'text' in found.content
      ? found.content.text
      : null;
  }

  async gc(maxLifetimeSeconds: number): Promise<number> {
    const { lifetimeSeconds, ioTimeoutMs, logger } = this.#context;
    return collectGarbage({
      directory: this.#directory,
      names: this.#names,
      locks: this.#locks,
      isExpired: (stats) => this.#expiry.isIdle(stats, maxLifetimeSeconds),
      // A write with a shorter lifetime backdates its temporary file by up to the context's
      // lifetime (see file/expiry.ts): such a file must not look like a crashed writer's.
      temporaryMaxAgeMs: Math.max(
        maxLifetimeSeconds * 1000,
        lifetimeSeconds * 1000,
        TEMPORARY_FILE_MIN_AGE_MS,
      ),
      ioTimeoutMs,
      logger,
    });
  }

  async close(): Promise<void> {
    const held = [...this.#held.values()];
    this.#held.clear();
    await Promise.all(held.map(({ locked }) => this.#locks.release(locked).catch(() => {})));
  }

  /**
   * The session this token holds the lock of, checked against the file system for a lock that can
   * be taken over; undefined when the lock is not, or no longer, the token's (a lock taken over is
   * let go: the mechanism leaves it to its new holder).
   */
  async #holding(path: string, token: string): Promise<HeldSession | undefined> {
    const held = this.#held.get(path);
    if (held?.token !== token) return undefined;
    if (await this.#locks.stillHeld(held.locked)) return held;
    await this.#release(path, held);
    return undefined;
  }

  async #release(path: string, held: HeldSession): Promise<void> {
    if (this.#held.get(path) === held) this.#held.delete(path);
    await this.#locks.release(held.locked);
  }

  /** What a session file just locked holds: a live payload, null, or unreadable bytes. */
  async #readLocked(
    locked: LockedSessionFile,
  ): Promise<{ attempt: Extract<LockAttempt, { locked: true }>; php: Buffer | null }> {
    const found =
      locked.handle !== null && locked.stats !== null
        ? await this.#liveContent(locked.handle, locked.stats)
        : await withSessionFile(locked.path, (handle, stats) => this.#liveContent(handle, stats));
    if (found === undefined || found === null) {
      return { attempt: { locked: true, payload: null }, php: null };
    }
    const { content, expiresInMs, php } = found;
    return {
      attempt:
        'text' in content
          ? { locked: true, payload: content.text, expiresInMs }
          : { locked: true, payload: null, unreadable: content.unreadable },
      php,
    };
  }

  /** The content of a live session file and its time left; null for a placeholder or an expired file. */
  async #liveContent(handle: FileHandle, stats: Stats): Promise<LiveContent | null> {
    if (!this.#expiry.isLive(stats)) return null;
    const expiresInMs = this.#expiry.remainingMs(stats);
    if (!this.#codeigniter) {
      return { content: await readContent(handle, stats), expiresInMs, php: null };
    }
    const php = await readBytes(handle, stats);
    const translated = payloadOfPhpSession(php, 'a session file');
    const content = 'payload' in translated ? { text: translated.payload } : translated;
    return { content, expiresInMs, php };
  }

  #path(key: SessionKey): string {
    return sessionFilePath(this.#directory, this.#context.cookieName, key, this.#ids);
  }
}

/**
 * The file driver, keepsake's default: `file({ directory: '/var/lib/myapp/sessions' })`. Options
 * are checked here, at once; the directory is created and checked, and the lock mechanism chosen,
 * when the session manager opens the driver.
 */
export function file(options: FileDriverOptions = {}): SessionDriver {
  const directory = resolveSessionDirectory(options.directory);
  const layout = options.layout ?? 'keepsake';
  if (layout !== 'keepsake' && layout !== 'codeigniter') {
    throw new SessionConfigError(
      'layout',
      `the file driver's layout is 'keepsake' or 'codeigniter', got ${JSON.stringify(layout)}.`,
    );
  }
  const requested = options.lock ?? 'auto';
  if (!FILE_LOCK_CHOICES.includes(requested)) {
    throw new SessionConfigError(
      'lock',
      `the file driver locks with 'flock', 'mkdir' or 'auto', got ${JSON.stringify(requested)}.`,
    );
  }
  if (layout === 'codeigniter' && requested === 'mkdir') {
    throw new SessionConfigError(
      'lock',
      "CodeIgniter locks a session with flock on its file, so layout: 'codeigniter' needs lock: 'flock' (or 'auto'), not 'mkdir'.",
    );
  }
  // CodeIgniter's layout cannot fall back to mkdir locks: PHP would not see them.
  const choice: FileLockChoice = layout === 'codeigniter' ? 'flock' : requested;
  return {
    name: 'file',
    async open(context: DriverContext): Promise<SessionStore> {
      await prepareSessionDirectory(directory, context.logger);
      const locks = await chooseLockMechanism(choice, context.lockTtlMs, context.logger);
      context.logger.debug(
        `keepsake: file driver in ${directory.path}, locking with ${locks.kind}${layout === 'codeigniter' ? ", in CodeIgniter's layout" : ''}`,
      );
      return new FileStore(directory.path, locks, context, layout);
    },
  };
}
