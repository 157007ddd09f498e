import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SessionConfig } from '../config.js';
import { SessionError } from '../errors.js';
import { type RequestInfo, SessionManager } from '../manager.js';
import type { Session, SessionData } from '../session.js';

/** Options of the middleware: the session configuration plus per-request choices. */
export interface SessionMiddlewareOptions extends SessionConfig {
  /**
   * Requests for which the session is read without a lock and cannot be changed (e.g. a polling
   * endpoint that must not queue behind a slow request on the same session).
   */
  readOnly?: (request: IncomingMessage) => boolean;
}

/** A request after the middleware ran. */
export type SessionRequest<Data extends SessionData = SessionData> = IncomingMessage & {
  session: Session<Data>;
};

type Next = (error?: unknown) => void;

/** Connect/Express middleware; `manager` is exposed for shutdown() and collectGarbage(). */
export interface SessionMiddleware {
  (request: IncomingMessage, response: ServerResponse, next: Next): void;
  readonly manager: SessionManager;
}

/** What the manager needs from a node:http request. `ip` is Express's (trust proxy aware) when present. */
export function requestInfo(request: IncomingMessage, readOnly: boolean): RequestInfo {
  const requestedWith = request.headers['x-requested-with'];
  const expressIp = (request as IncomingMessage & { ip?: unknown }).ip;
  return {
    cookieHeader: request.headers.cookie,
    ip: typeof expressIp === 'string' ? expressIp : (request.socket.remoteAddress ?? ''),
    ajax: typeof requestedWith === 'string' && requestedWith.toLowerCase() === 'xmlhttprequest',
    readOnly,
  };
}

/**
 * Session middleware for node:http, Connect and Express: `app.use(session({ ...config }))`, then
 * `req.session` is the Session. The data is saved before the response finishes, so the client's
 * next request always sees it; a lock timeout or store failure reaches `next(error)` as a 503.
 */
export function session(options: SessionMiddlewareOptions = {}): SessionMiddleware {
  const { readOnly, ...config } = options;
  const manager = new SessionManager(config);
  const middleware = (request: IncomingMessage, response: ServerResponse, next: Next): void => {
    manager
      .start(requestInfo(request, readOnly?.(request) ?? false))
      .then((started) => {
        (request as SessionRequest).session = started;
        attach(manager, started, response);
        next();
      })
      .catch(next);
  };
  return Object.assign(middleware, { manager });
}

/**
 * Hooks the response: Set-Cookie is added when the headers go out, and `end()` waits for the
 * session to be written (PHP's write-before-output order). A response that never ends (client gone)
 * still releases the lock on 'close'.
 */
function attach(manager: SessionManager, started: Session, response: ServerResponse): void {
  const { logger } = manager.config;
  const writeHead = response.writeHead;
  response.writeHead = function writeHeadWithCookies(
    this: ServerResponse,
    ...args: Parameters<ServerResponse['writeHead']>
  ) {
    if (!this.headersSent) {
      for (const cookie of manager.setCookies(started)) this.appendHeader('Set-Cookie', cookie);
    }
    return writeHead.apply(this, args);
  } as ServerResponse['writeHead'];

  const end = response.end;
  let ending = false;
  response.end = function endAfterCommit(this: ServerResponse, ...args: unknown[]) {
    if (ending) return this;
    ending = true;
    manager.commit(started).then(
      () => Reflect.apply(end, this, args),
      (error: unknown) => {
        logger.error('keepsake: saving the session failed', error);
        if (this.headersSent) {
          Reflect.apply(end, this, args);
          return;
        }
        for (const name of this.getHeaderNames()) this.removeHeader(name);
        const status = error instanceof SessionError ? error.status : 500;
        const message = error instanceof Error ? error.message : String(error);
        this.statusCode = status;
        this.setHeader('Content-Type', 'text/plain; charset=utf-8');
        Reflect.apply(end, this, [message]);
      },
    );
    return this;
  } as ServerResponse['end'];

  response.once('close', () => {
    manager.commit(started).catch((error: unknown) => {
      logger.error('keepsake: saving the session of an aborted request failed', error);
    });
  });
}

/** The failure answer when no framework error handler exists (plain node:http). */
export function sendSessionError(response: ServerResponse, error: unknown): void {
  const status = error instanceof SessionError ? error.status : 500;
  const message = error instanceof SessionError ? error.message : 'Internal Server Error';
  if (response.headersSent) {
    response.destroy(error instanceof Error ? error : undefined);
    return;
  }
  response.statusCode = status;
  response.setHeader('Content-Type', 'text/plain; charset=utf-8');
  response.end(message);
}

/**
 * For plain node:http: `http.createServer(withSession(config, async (req, res) => { … }))`. Errors
 * of the session (503) or the handler (500) are answered instead of crashing the process.
 */
export function withSession<Data extends SessionData = SessionData>(
  options: SessionMiddlewareOptions,
  handler: (request: SessionRequest<Data>, response: ServerResponse) => unknown,
): ((request: IncomingMessage, response: ServerResponse) => void) & { manager: SessionManager } {
  const middleware = session(options);
  const listener = (request: IncomingMessage, response: ServerResponse): void => {
    middleware(request, response, (error) => {
      if (error !== undefined) {
        sendSessionError(response, error);
        return;
      }
      Promise.resolve()
        .then(() => handler(request as SessionRequest<Data>, response))
        .catch((failure: unknown) => {
          middleware.manager.config.logger.error('keepsake: the request handler failed', failure);
          sendSessionError(response, failure);
        });
    });
  };
  return Object.assign(listener, { manager: middleware.manager });
}
