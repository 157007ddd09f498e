/** Base class of every error keepsake throws; `code` is stable across versions. */
export class SessionError extends Error {
  readonly code: string;
  /** HTTP status an adapter answers with when this error ends a request. */
  readonly status: number;

  constructor(code: string, message: string, status = 500, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    // A 503 is an operational failure, not a bug: frameworks that print the stack to the client
    // (Express outside production) show this line only. The cause keeps its own stack for logs.
    if (status === 503) this.stack = `${this.name}: ${message}`;
  }

  /** Express and Koa read `statusCode`/`expose` to decide what to send. */
  get statusCode(): number {
    return this.status;
  }

  get expose(): boolean {
    return this.status < 500 || this.status === 503;
  }
}

/** A configuration option is invalid; thrown when the manager is created, never inside a request. */
export class SessionConfigError extends SessionError {
  readonly option: string;

  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super('KEEPSAKE_CONFIG', `keepsake: invalid option "${option}": ${message}`, 500, options);
    this.option = option;
  }
}

/** The session's lock was not obtained within `lockWait`; adapters answer 503. */
export class SessionLockTimeoutError extends SessionError {
  constructor(waitedMs: number, driver: string) {
    super(
      'KEEPSAKE_LOCK_TIMEOUT',
      `keepsake: the session is locked by another request and was not released within ${Math.round(waitedMs)} ms (driver "${driver}"). ` +
        'A request on the same session is still running: shorten it, call session.close() once it no longer writes, ' +
        'mark read-only routes with readOnly, or raise the lockWait option.',
      503,
    );
  }
}

/**
 * The session store failed or timed out; adapters answer 503 and the process stays up. The message
 * names the driver and the operation only: the cause (addresses, paths, SQL) is in `cause`, for
 * logs, never in what a client may be shown.
 */
export class SessionStoreError extends SessionError {
  readonly driver: string;
  readonly operation: string;

  constructor(driver: string, operation: string, cause: unknown, code = 'KEEPSAKE_STORE') {
    super(
      code,
      `keepsake: the "${driver}" session store failed during ${operation}. ` +
        'keepsake retries on the next request; the cause is logged.',
      503,
      { cause },
    );
    this.driver = driver;
    this.operation = operation;
  }
}

/**
 * This request's lock expired (its process stalled for longer than lockTtl) and another request may
 * own the session now, so nothing was changed: neither saved, touched nor deleted.
 */
export class SessionLockLostError extends SessionStoreError {
  constructor(driver: string, operation: string, lockTtlMs: number) {
    super(
      driver,
      operation,
      new Error(
        `the session lock was lost before the ${operation}: the session was revoked (manager.revoke or revokeAll), or this process stalled for longer than lockTtl (${lockTtlMs} ms) and its lock expired; ` +
          'another request may own the session now, so nothing was changed rather than overwrite or revive its data. ' +
          'After a revocation this is expected; otherwise raise lockTtl if the event loop stalls for that long.',
      ),
      'KEEPSAKE_LOCK_LOST',
    );
  }
}

/** The session was written with close() or destroyed with destroy(); later changes cannot be saved. */
export class SessionClosedError extends SessionError {
  constructor(state: 'closed' | 'destroyed' | 'readOnly', operation: string) {
    const why =
      state === 'readOnly'
        ? 'this request opened the session read-only (readOnly option), so it holds no lock and may not write'
        : state === 'closed'
          ? 'session.close() already saved it and released its lock'
          : 'session.destroy() already deleted it';
    super(
      'KEEPSAKE_CLOSED',
      `keepsake: cannot ${operation}: ${why}. Make every change before that call.`,
      500,
    );
  }
}

/**
 * A value cannot be stored: `set()` was given a function, a cycle, a BigInt, a class instance…, or
 * the whole session grew past `maxPayloadBytes`. The stored session stays as it was.
 */
export class SessionValueError extends SessionError {
  /** `(key, path, what)`: "cannot store session key <key>: <path> is <what>". `(message)`: as given. */
  constructor(key: string, path: string, what: string);
  constructor(message: string);
  constructor(keyOrMessage: string, path?: string, what?: string) {
    super(
      'KEEPSAKE_VALUE',
      what === undefined
        ? keyOrMessage
        : `keepsake: cannot store session key "${keyOrMessage}": ${path ? `${path} is` : 'the value is'} ${what}. ` +
            'Session values must be JSON data (null, booleans, finite numbers, strings, arrays, plain objects) or Date.',
      500,
    );
  }
}

/** The regeneration or the cookie change came after the response headers were sent. */
export class SessionHeadersSentError extends SessionError {
  constructor(operation: string) {
    super(
      'KEEPSAKE_HEADERS_SENT',
      `keepsake: cannot ${operation} after the response headers were sent, because the new cookie could not reach the client. ` +
        'Call it before writing the response.',
      500,
    );
  }
}

/**
 * An express-session method that keepsake's locking model gives no meaning to (`reload()`); the
 * message says why and what to call instead. Thrown, or passed to the method's callback when given.
 */
export class SessionUnsupportedError extends SessionError {
  /** The method called, e.g. `reload`. */
  readonly method: string;

  constructor(method: string, reason: string, instead: string) {
    super(
      'KEEPSAKE_UNSUPPORTED',
      `keepsake: session.${method}() is not supported: ${reason}. ${instead}`,
      500,
    );
    this.method = method;
  }
}
