import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SessionConfig } from '../config.js';
import { SessionError } from '../errors.js';
import { type RequestInfo, SessionManager } from '../manager.js';
import type { AppSessionData, Session, SessionData } from '../session.js';

/** Options of the middleware: the session configuration plus per-request choices. */
export interface SessionMiddlewareOptions extends SessionConfig {
  /**
   * Requests for which the session is read without a lock and cannot be changed (e.g. a polling
   * endpoint that must not queue behind a slow request on the same session).
   */
  readOnly?: (request: IncomingMessage) => boolean;
}

/** A request after the middleware ran. */
export type SessionRequest<Data extends SessionData = AppSessionData> = IncomingMessage & {
  session: Session<Data>;
};

type Next = (error?: unknown) => void;

/** Connect/Express middleware; `manager` is exposed for shutdown() and collectGarbage(). */
export interface SessionMiddleware {
  (request: IncomingMessage, response: ServerResponse, next: Next): void;
  readonly manager: SessionManager;
}

/** What the manager needs from a node:http request. `ip` is Express's (trust proxy aware) when present. */
export function requestInfo(
  request: IncomingMessage,
  readOnly: boolean,
  needsIp = true,
): RequestInfo {
  const requestedWith = request.headers['x-requested-with'];
  return {
    cookieHeader: request.headers.cookie,
    ip: needsIp ? clientIp(request) : '',
    ajax: typeof requestedWith === 'string' && requestedWith.toLowerCase() === 'xmlhttprequest',
    readOnly,
  };
}

/** Express's `req.ip` (trust-proxy aware; computed on each read, so only when matchIP needs it). */
function clientIp(request: IncomingMessage): string {
  const expressIp = (request as IncomingMessage & { ip?: unknown }).ip;
  return typeof expressIp === 'string' ? expressIp : (request.socket.remoteAddress ?? '');
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
      .start(requestInfo(request, readOnly?.(request) ?? false, manager.config.matchIP))
      .then((started) => {
        (request as SessionRequest).session = started;
        attach(manager, started, response);
        next();
      })
      .catch(next);
  };
  return Object.assign(middleware, { manager });
}

/** What the patched response methods need; kept on the response to avoid per-request closures. */
interface Attached {
  manager: SessionManager;
  session: Session;
  writeHead: ServerResponse['writeHead'];
  end: ServerResponse['end'];
  ending: boolean;
}

// A WeakMap, not a property: Express swaps the response's prototype, after which every property
// added to it costs microseconds (measured), and this runs on every request.
const attachments = new WeakMap<ServerResponse, Attached>();

function attachedTo(response: ServerResponse): Attached {
  const attached = attachments.get(response);
  if (attached === undefined) throw new Error('keepsake: response was not started by keepsake');
  return attached;
}

/**
 * Hooks the response: Set-Cookie is added when the headers go out, and `end()` waits for the
 * session to be written (PHP's write-before-output order). A response that never ends (client gone)
 * still releases the lock on 'close'.
 */
function attach(manager: SessionManager, started: Session, response: ServerResponse): void {
  const attached: Attached = {
    manager,
    session: started,
    writeHead: response.writeHead,
    end: response.end,
    ending: false,
  };
  attachments.set(response, attached);
  response.writeHead = writeHeadWithCookies as ServerResponse['writeHead'];
  response.end = endAfterCommit as ServerResponse['end'];
  response.on('close', commitOnClose);
}

function writeHeadWithCookies(this: ServerResponse, ...args: unknown[]): unknown {
  const { manager, session, writeHead } = attachedTo(this);
  if (!this.headersSent) {
    for (const cookie of manager.setCookies(session)) this.appendHeader('Set-Cookie', cookie);
  }
  return Reflect.apply(writeHead, this, args);
}

function endAfterCommit(this: ServerResponse, ...args: unknown[]): ServerResponse {
  const attached = attachedTo(this);
  if (attached.ending) return this;
  attached.ending = true;
  attached.manager.commit(attached.session).then(
    () => Reflect.apply(attached.end, this, args),
    (error: unknown) => answerCommitFailure(this, attached, args, error),
  );
  return this;
}

/** Saving failed: an unsent response becomes the error; a streamed one can only end as it is. */
function answerCommitFailure(
  response: ServerResponse,
  attached: Attached,
  args: unknown[],
  error: unknown,
): void {
  attached.manager.config.logger.error('keepsake: saving the session failed', error);
  if (response.headersSent) {
    Reflect.apply(attached.end, response, args);
    return;
  }
  for (const name of response.getHeaderNames()) response.removeHeader(name);
  response.statusCode = error instanceof SessionError ? error.status : 500;
  response.setHeader('Content-Type', 'text/plain; charset=utf-8');
  Reflect.apply(attached.end, response, [
    error instanceof SessionError && error.expose ? error.message : 'Internal Server Error',
  ]);
}

function commitOnClose(this: ServerResponse): void {
  const { manager, session } = attachedTo(this);
  manager.commit(session).catch((error: unknown) => {
    manager.config.logger.error('keepsake: saving the session of an aborted request failed', error);
  });
}

/** The failure answer when no framework error handler exists (plain node:http). */
export function sendSessionError(response: ServerResponse, error: unknown): void {
  const status = error instanceof SessionError ? error.status : 500;
  const message =
    error instanceof SessionError && error.expose ? error.message : 'Internal Server Error';
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
export function withSession<Data extends SessionData = AppSessionData>(
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
