/**
 * Settles like `operation`, or rejects once `ms` have passed. The core bounds every store call by
 * ioTimeout, but not GC, which sweeps a whole directory: GC bounds each of its file operations with
 * this, so a hung file system (a dead NFS server, a stuck disk) ends the sweep instead of hanging it.
 * The operation itself cannot be cancelled; `dispose` receives its late result (e.g. a lock taken
 * after the deadline) so nothing leaks.
 */
export function withinIoTimeout<T>(
  operation: Promise<T>,
  ms: number,
  what: string,
  dispose?: (late: T) => unknown,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      reject(
        new Error(
          `${what} did not finish within ioTimeout (${ms} ms); the file system of the session directory is hung or overloaded`,
        ),
      );
    }, ms);
    operation.then(
      (value) => {
        clearTimeout(timer);
        if (!timedOut) resolve(value);
        else if (dispose !== undefined) {
          Promise.resolve()
            .then(() => dispose(value))
            .catch(() => {});
        }
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (!timedOut) reject(error);
      },
    );
  });
}

/** The error code of a failed fs call ("ENOENT"…), or undefined. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** Runs an fs call whose "file is already gone" outcome is fine (unlink, rmdir…). */
export async function ignoringMissing<T>(operation: Promise<T>): Promise<T | undefined> {
  try {
    return await operation;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}
