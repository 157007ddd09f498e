import type { SessionConfig } from './config.js';
import { SessionError } from './errors.js';
import { SessionManager } from './manager.js';
import type { Session, SessionData } from './session.js';

/** What every adapter's options add to the session configuration. */
export interface AdapterOptions<Request> extends SessionConfig {
  /**
   * Requests whose session is read without a lock and cannot be changed (e.g. a polling endpoint
   * that must not queue behind a slow request on the same session).
   */
  readOnly?: (request: Request) => boolean;
}

/** What an adapter reads off its framework's request. */
export interface RequestFacts {
  readonly cookieHeader: string | readonly string[] | undefined;
  /** The client IP as the framework sees it (trust-proxy aware); only read under matchIP. */
  readonly ip: () => string;
  /** The `X-Requested-With` header, if any. */
  readonly requestedWith: string | null | undefined;
  /**
   * The request arrived over HTTPS as the framework sees it (its trust-proxy setting included);
   * only called when `cookie.secure` is `'auto'` or `true`.
   */
  readonly secure?: () => boolean;
}

/** Header name/value pairs to add to a response. */
export type HeaderPairs = readonly (readonly [string, string])[];

const NO_HEADERS: HeaderPairs = [];

/** A safe answer to a request whose session failed: a status and a text that names no internals. */
export interface FailureAnswer {
  readonly status: number;
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * The glue every adapter shares, so that each adapter holds only its framework's hooks: starting a
 * request's session from the facts of its request, committing it and reporting a failure once,
 * and the safe failure answer.
 */
export class AdapterKit<Request> {
  readonly manager: SessionManager;
  readonly #readOnly: ((request: Request) => boolean) | undefined;
  /** Whether the request's scheme matters: cookie.secure is 'auto' or true. */
  readonly #askSecure: boolean;

  constructor(options: AdapterOptions<Request>) {
    const { readOnly, ...config } = options;
    this.manager = new SessionManager(config);
    this.#readOnly = readOnly;
    this.#askSecure = this.manager.config.cookie.secure !== false;
  }

  /** Starts the session of `request`. Rejects with SessionLockTimeoutError or SessionStoreError (503). */
  start<Data extends SessionData = SessionData>(
    request: Request,
    facts: RequestFacts,
  ): Promise<Session<Data>> {
    return this.manager.start<Data>({
      cookieHeader: facts.cookieHeader,
      ip: this.manager.config.matchIP ? facts.ip() : '',
      ajax: isAjax(facts.requestedWith),
      readOnly: this.#readOnly?.(request) ?? false,
      secure: this.#askSecure ? facts.secure?.() : undefined,
    });
  }

  /**
   * The cache headers (PHP's session.cache_limiter) to add to the response of a request that has
   * a session. The app wins: when it set its own Cache-Control none are added (its caching policy
   * is not contradicted by a Pragma or a past Expires), and a header it set is never replaced.
   * `has(target, name)` tells whether the response already holds a header (name in lower case).
   */
  cacheHeaders<Target>(
    session: Session,
    target: Target,
    has: (target: Target, name: string) => boolean,
  ): HeaderPairs {
    const pairs = this.manager.cacheHeaders(session);
    if (pairs.length === 0 || has(target, 'cache-control')) return NO_HEADERS;
    for (const [name] of pairs) {
      if (has(target, name.toLowerCase()))
        return pairs.filter(([other]) => !has(target, other.toLowerCase()));
    }
    return pairs;
  }

  /** Saves (or touches) and unlocks, then answers the Set-Cookie values. */
  async finish(session: Session): Promise<string[]> {
    await this.manager.commit(session);
    return this.manager.setCookies(session);
  }

  /** Saves and unlocks a request that is already failing or gone; a failure is logged, never thrown. */
  finishQuietly(session: Session, why = 'saving the session failed'): Promise<void> {
    return this.manager.commit(session).catch((error: unknown) => this.report(error, why));
  }

  /**
   * Logs a failure of the request through the configured logger — except a store failure or a
   * lock timeout (a 503), which the core reports itself, rate-limited, with its cause.
   */
  report(error: unknown, why = 'saving the session failed'): void {
    if (error instanceof SessionError && error.status === 503) return;
    this.manager.config.logger.error(`keepsake: ${why}`, error);
  }

  /** The answer to send when the session failed and no framework error handler will: 503 or 500. */
  failure(error: unknown): FailureAnswer {
    return failureAnswer(error);
  }
}

/** `X-Requested-With: XMLHttpRequest`, in any case: CodeIgniter's AJAX test. */
export function isAjax(requestedWith: string | null | undefined): boolean {
  return typeof requestedWith === 'string' && requestedWith.toLowerCase() === 'xmlhttprequest';
}

/**
 * A session error's status and message (503s name the driver and operation only, never a host,
 * path or query), or a plain 500 for anything else.
 */
export function failureAnswer(error: unknown): FailureAnswer {
  const known = error instanceof SessionError && error.expose;
  return {
    status: error instanceof SessionError ? error.status : 500,
    body: known ? error.message : 'Internal Server Error',
    headers: { 'Content-Type': 'text/plain; charset=utf-8' },
  };
}
