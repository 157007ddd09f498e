import type { Stats } from 'node:fs';
import { stat, unlink, utimes } from 'node:fs/promises';
import { systemClock } from '../clock.js';
import type { ResolvedConfig } from '../config.js';
import { SessionConfigError } from '../errors.js';
import type {
  HandlerSettings,
  LockedRead,
  SessionHandler,
  SessionKey,
  SessionLock,
} from './contract.js';
import { FlockMechanism, loadFsExt } from './file/flock.js';
import { collectGarbage } from './file/gc.js';
import { errorCode, ignoringMissing, withinIoTimeout } from './file/io-timeout.js';
import type { FileLockKind, FileLockMechanism, LockedSessionFile } from './file/lock.js';
import { MkdirMechanism } from './file/mkdir-lock.js';
import { type SessionFileNames, sessionFileNames, sessionFilePath } from './file/names.js';
import { prepareSaveDirectory } from './file/save-path.js';
import { readPayload, replaceAtomically, withSessionFile } from './file/session-file.js';

export type { FileLockKind } from './file/lock.js';
export { defaultSavePath } from './file/save-path.js';

/** Which lock to use: flock when the fs-ext addon loads (else the mkdir fallback), or one forced. */
export type FileLockChoice = FileLockKind | 'auto';

export interface FileHandlerOptions {
  /**
   * 'auto' (default): flock through the optional `fs-ext` addon, or the mkdir/heartbeat fallback
   * when it is not installed. 'flock' fails at open() without the addon; 'mkdir' forces the fallback.
   */
  lock?: FileLockChoice;
}

/** A session this process has locked through read(), by lock token. */
interface HeldSession {
  readonly locked: LockedSessionFile;
  /** read() found a live payload; when false, the file is absent, empty (a lock placeholder) or expired. */
  readonly found: boolean;
}

/** Temporary files younger than this are never taken for a crashed writer's leftovers. */
const TEMPORARY_FILE_MIN_AGE_MS = 10 * 60 * 1000;

/**
 * The default driver: one file per session in `savePath`, as CodeIgniter's FileHandler, made safe
 * for several Node processes. A session is locked across processes with flock (or the mkdir
 * fallback), written through a temporary file and rename (never torn), touched rather than
 * rewritten when unchanged, and expires by its modification time. An empty file is a lock
 * placeholder for a session not written yet, and counts as no session.
 */
export class FileHandler implements SessionHandler {
  readonly name = 'file';
  readonly #choice: FileLockChoice;
  readonly #held = new Map<string, HeldSession>();
  #settings: HandlerSettings | undefined;
  #locks: FileLockMechanism | undefined;
  #directory = '';
  #names: SessionFileNames | undefined;
  #lockCounter = 0;

  constructor(options: FileHandlerOptions = {}) {
    this.#choice = options.lock ?? 'auto';
  }

  /** The session directory in use (after open()). */
  get directory(): string {
    return this.#directory;
  }

  /** The lock mechanism in use (after open()). */
  get lockKind(): FileLockKind | undefined {
    return this.#locks?.kind;
  }

  async open(settings: HandlerSettings): Promise<void> {
    this.#settings = settings;
    this.#directory = await prepareSaveDirectory(settings.savePath, settings.logger);
    this.#names = sessionFileNames(settings.cookieName);
    this.#locks = await this.#createLocks(settings);
    settings.logger.debug(
      `keepsake: file driver in ${this.#directory}, locking with ${this.#locks.kind}`,
    );
  }

  async read(key: SessionKey, waitMs: number): Promise<LockedRead> {
    const locks = this.#requireLocks();
    const path = this.#path(key);
    const locked = await locks.acquire(path, waitMs);
    let data: string | null;
    try {
      data = await this.#io(this.#readLocked(locked), 'reading a session file');
    } catch (error) {
      await locks.release(locked).catch(() => {});
      throw error;
    }
    this.#lockCounter += 1;
    const token = String(this.#lockCounter);
    this.#held.set(token, { locked, found: data !== null });
    return { data, lock: { token } };
  }

  async peek(key: SessionKey): Promise<string | null> {
    const path = this.#path(key);
    const data = await this.#io(
      withSessionFile(path, async (handle, stats) =>
        this.#isLive(stats) ? readPayload(handle, stats) : null,
      ),
      'reading a session file',
    );
    return data ?? null;
  }

  async write(_key: SessionKey, lock: SessionLock, data: string): Promise<void> {
    const { locked } = this.#take(lock);
    await this.#thenRelease(
      locked,
      replaceAtomically(locked.path, data, this.#explicitMtime()),
      'writing a session file',
    );
  }

  async updateTimestamp(_key: SessionKey, lock: SessionLock, data: string): Promise<void> {
    const held = this.#take(lock);
    const { path, handle } = held.locked;
    const now = new Date(this.#requireSettings().clock());
    const touchOrWrite = async () => {
      if (held.found) {
        try {
          // The locked inode is the one at the path (verified when locking), so touch it directly.
          await (handle === null ? utimes(path, now, now) : handle.utimes(now, now));
          return;
        } catch (error) {
          if (errorCode(error) !== 'ENOENT') throw error;
        }
      }
      await replaceAtomically(path, data, this.#explicitMtime());
    };
    await this.#thenRelease(held.locked, touchOrWrite(), 'saving a session file');
  }

  async close(_key: SessionKey, lock: SessionLock): Promise<void> {
    const held = this.#take(lock);
    // Nothing live was read: remove the placeholder (or the expired file) rather than leave it.
    const removal = held.found
      ? Promise.resolve(undefined)
      : ignoringMissing(unlink(held.locked.path));
    await this.#thenRelease(held.locked, removal, 'removing a session file');
  }

  async destroy(key: SessionKey, lock: SessionLock | null): Promise<void> {
    const locked =
      lock === null
        ? await this.#requireLocks().acquire(this.#path(key), this.#requireSettings().lockWaitMs)
        : this.#take(lock).locked;
    await this.#thenRelease(
      locked,
      ignoringMissing(unlink(locked.path)),
      'removing a session file',
    );
  }

  async validateId(key: SessionKey): Promise<boolean> {
    const info = await this.#io(ignoringMissing(stat(this.#path(key))), 'checking a session file');
    return info !== undefined && this.#isLive(info);
  }

  async gc(maxLifetimeSeconds: number): Promise<number> {
    const settings = this.#requireSettings();
    const names = this.#names;
    if (names === undefined) throw new Error('keepsake: the file handler was used before open().');
    return collectGarbage({
      directory: this.#directory,
      names,
      locks: this.#requireLocks(),
      isExpired: (stats) => stats.mtimeMs <= settings.clock() - maxLifetimeSeconds * 1000,
      temporaryMaxAgeMs: Math.max(maxLifetimeSeconds * 1000, TEMPORARY_FILE_MIN_AGE_MS),
      ioTimeoutMs: settings.ioTimeoutMs,
      logger: settings.logger,
    });
  }

  async shutdown(): Promise<void> {
    this.#held.clear();
    await this.#locks?.shutdown();
  }

  async #createLocks(settings: HandlerSettings): Promise<FileLockMechanism> {
    const mkdirLocks = () =>
      new MkdirMechanism({
        lockTtlMs: settings.lockTtlMs,
        ioTimeoutMs: settings.ioTimeoutMs,
        logger: settings.logger,
      });
    if (this.#choice === 'mkdir') return mkdirLocks();
    const addon = await loadFsExt();
    if (addon !== null) return new FlockMechanism(addon, settings.ioTimeoutMs);
    if (this.#choice === 'flock') {
      throw new SessionConfigError(
        'driver',
        'the file driver was asked to lock with flock, but the optional "fs-ext" addon is not installed or did not build; ' +
          'install it (npm install fs-ext, which needs a C++ toolchain) or let the driver fall back to mkdir locks.',
      );
    }
    settings.logger.warn(
      'keepsake: the optional "fs-ext" addon is not available, so the file driver locks with mkdir and a heartbeat: ' +
        `a crashed process's sessions stay locked for up to lockTtl (${settings.lockTtlMs} ms). Install fs-ext for flock.`,
    );
    return mkdirLocks();
  }

  /** The payload of a file we hold the lock of; null when absent, empty or expired. */
  async #readLocked(locked: LockedSessionFile): Promise<string | null> {
    if (locked.handle !== null && locked.stats !== null) {
      return this.#isLive(locked.stats) ? readPayload(locked.handle, locked.stats) : null;
    }
    const data = await withSessionFile(locked.path, async (handle, stats) =>
      this.#isLive(stats) ? readPayload(handle, stats) : null,
    );
    return data ?? null;
  }

  #isLive(stats: Stats): boolean {
    const settings = this.#requireSettings();
    return (
      stats.isFile() &&
      stats.size > 0 &&
      stats.mtimeMs + settings.lifetimeSeconds * 1000 > settings.clock()
    );
  }

  /** The kernel stamps writes with the system time; any other session clock is set explicitly. */
  #explicitMtime(): Date | null {
    const { clock } = this.#requireSettings();
    return clock === systemClock ? null : new Date(clock());
  }

  #path(key: SessionKey): string {
    return sessionFilePath(this.#directory, this.#requireSettings().cookieName, key);
  }

  #take(lock: SessionLock): HeldSession {
    const held = this.#held.get(lock.token);
    if (held === undefined) {
      throw new Error(
        'keepsake: the file driver was given a lock it does not hold (released twice?).',
      );
    }
    this.#held.delete(lock.token);
    return held;
  }

  /**
   * Waits (at most ioTimeout) for the last step of a locked request, then unlocks. The lock is
   * released only once the step has really settled: a write that timed out may still land, and
   * must not land after another process has taken the lock and written newer data.
   */
  async #thenRelease(
    locked: LockedSessionFile,
    operation: Promise<unknown>,
    what: string,
  ): Promise<void> {
    const locks = this.#requireLocks();
    try {
      await this.#io(operation, what);
    } catch (error) {
      operation
        .catch(() => {})
        .finally(() => locks.release(locked).catch(() => {}))
        .catch(() => {});
      throw error;
    }
    await locks.release(locked);
  }

  #io<T>(operation: Promise<T>, what: string): Promise<T> {
    return withinIoTimeout(operation, this.#requireSettings().ioTimeoutMs, what);
  }

  #requireLocks(): FileLockMechanism {
    if (this.#locks === undefined)
      throw new Error('keepsake: the file handler was used before open().');
    return this.#locks;
  }

  #requireSettings(): HandlerSettings {
    if (this.#settings === undefined)
      throw new Error('keepsake: the file handler was used before open().');
    return this.#settings;
  }
}

/** Reads KEEPSAKE_FILE_LOCK ('flock', 'mkdir' or 'auto'), which forces a lock mechanism for tests and diagnosis. */
function lockChoiceFromEnvironment(): FileLockChoice {
  const value = process.env.KEEPSAKE_FILE_LOCK;
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if (value === 'flock' || value === 'mkdir') return value;
  throw new SessionConfigError(
    'driver',
    `KEEPSAKE_FILE_LOCK must be "flock", "mkdir" or "auto", got ${JSON.stringify(value)}.`,
  );
}

export function createHandler(_config: ResolvedConfig): SessionHandler {
  return new FileHandler({ lock: lockChoiceFromEnvironment() });
}
