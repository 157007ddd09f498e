import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import {
  IncomingMessage as NodeIncomingMessage,
  ServerResponse as NodeServerResponse,
} from 'node:http';
import type { TLSSocket } from 'node:tls';
import { AdapterKit, type AdapterOptions } from '../adapter-kit.js';
import type { AppSessionData, Session, SessionData } from '../index.js';
import type { SessionManager } from '../manager.js';

/** Options of the middleware: the session configuration plus per-request choices. */
export interface SessionMiddlewareOptions extends AdapterOptions<IncomingMessage> {
  /**
   * Whether the request arrived over HTTPS, for `cookie.secure: 'auto'`. Default: Express's
   * `req.secure` (which follows its `trust proxy` setting), else whether the connection is TLS
   * (node:https). Behind a proxy that ends TLS in front of plain node:http, read the proxy's header
   * here — only if every request comes through that proxy.
   */
  isSecure?: (request: IncomingMessage) => boolean;
}

/** A request after the middleware ran. */
export type SessionRequest<Data extends SessionData = AppSessionData> = IncomingMessage & {
  session: Session<Data>;
};

type Next = (error?: unknown) => void;

/** Connect/Express middleware; `manager` is exposed for ready(), shutdown() and collectGarbage(). */
export interface SessionMiddleware {
  (request: IncomingMessage, response: ServerResponse, next: Next): void;
  readonly manager: SessionManager;
}

/** Express's `req.ip` (trust-proxy aware), else the socket's address. */
function clientIp(request: IncomingMessage): string {
  const expressIp = (request as IncomingMessage & { ip?: unknown }).ip;
  return typeof expressIp === 'string' ? expressIp : (request.socket.remoteAddress ?? '');
}

/**
 * Express's `req.secure` (trust-proxy aware), else whether the connection itself is TLS
 * (node:https). A forwarded header is never read here: Express reads it only from a trusted proxy.
 */
function requestIsSecure(request: IncomingMessage): boolean {
  const expressSecure = (request as IncomingMessage & { secure?: unknown }).secure;
  if (typeof expressSecure === 'boolean') return expressSecure;
  return (request.socket as Partial<TLSSocket>).encrypted === true;
}

/**
 * Session middleware for node:http, Connect and Express: `app.use(session({ ...config }))`, then
 * `req.session` is the Session. The data is saved before the response finishes, so the client's
 * next request always sees it; a lock timeout or store failure reaches `next(error)` as a 503.
 * Responses of requests with a session get the `cacheLimiter` headers when their headers go out,
 * unless the app set its own Cache-Control (with setHeader or in writeHead).
 */
export function session(options: SessionMiddlewareOptions = {}): SessionMiddleware {
  const { isSecure = requestIsSecure, ...rest } = options;
  return middlewareOf(new AdapterKit<IncomingMessage>(rest), isSecure);
}

function middlewareOf(
  kit: AdapterKit<IncomingMessage>,
  isSecure: (request: IncomingMessage) => boolean,
): SessionMiddleware {
  const middleware = (request: IncomingMessage, response: ServerResponse, next: Next): void => {
    kit
      .start(request, {
        cookieHeader: request.headers.cookie,
        ip: () => clientIp(request),
        requestedWith: request.headers['x-requested-with'] as string | undefined,
        secure: () => isSecure(request),
      })
      .then((started) => {
        (request as SessionRequest).session = started;
        exposeSessionId(request);
        attach(kit, started, response);
        next();
      })
      .catch(next);
  };
  return Object.assign(middleware, { manager: kit.manager });
}

/** The request prototype last given `sessionID` (or found unsuited): most requests skip the search. */
let checkedPrototype: object | null = null;

/**
 * express-session's `req.sessionID`: a getter defined once, on the framework's own request prototype
 * — the one right above node's IncomingMessage, Express's `express.request`, which every app and
 * sub-app inherits — because a property added to each request costs microseconds once Express has
 * swapped its prototype. Plain node:http requests get none (use `req.session.id`), nor does a
 * prototype where another library already defined `sessionID`.
 */
function exposeSessionId(request: IncomingMessage): void {
  const prototype: object | null = Object.getPrototypeOf(request);
  if (prototype === checkedPrototype) return;
  checkedPrototype = prototype;
  let target = prototype;
  while (target !== null && Object.getPrototypeOf(target) !== NodeIncomingMessage.prototype) {
    target = Object.getPrototypeOf(target);
  }
  if (target === null || 'sessionID' in target) return;
  Object.defineProperty(target, 'sessionID', {
    configurable: true,
    get: sessionIdOfSession,
    set: ownSessionId,
  });
}

function sessionIdOfSession(this: { session?: unknown }): string | undefined {
  const current = this.session as { id?: unknown } | null | undefined;
  const id = current?.id;
  return typeof id === 'string' ? id : undefined;
}

/** An assignment (express-session's `req.sessionID = …`, on an app it serves) makes an ordinary own property, as without the getter. */
function ownSessionId(this: object, value: unknown): void {
  Object.defineProperty(this, 'sessionID', {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

/** What the patched response methods need; kept beside the response to avoid per-request closures. */
interface Attached {
  kit: AdapterKit<IncomingMessage>;
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
 * Hooks the response: Set-Cookie and the cache headers are added when the headers go out, and
 * `end()` waits for the session to be written (PHP's write-before-output order). A response that
 * never ends (client gone) still releases the lock on 'close'.
 */
function attach(
  kit: AdapterKit<IncomingMessage>,
  started: Session,
  response: ServerResponse,
): void {
  const shared = sharedHookOf(response);
  attachments.set(response, {
    kit,
    session: started,
    writeHead: shared?.writeHead ?? response.writeHead,
    end: shared?.end ?? response.end,
    ending: false,
  });
  if (shared === null) {
    response.writeHead = writeHeadWithCookies as ServerResponse['writeHead'];
    response.end = endAfterCommit as ServerResponse['end'];
  }
  response.on('close', commitOnClose);
}

/** The methods a shared hook replaced, called for responses keepsake did not start. */
interface Originals {
  readonly writeHead: ServerResponse['writeHead'];
  readonly end: ServerResponse['end'];
}

const hookedPrototypes = new WeakMap<object, Originals>();
/** The response prototype last seen, and its shared hook (null: hook each response instead). */
let lastPrototype: object | null = null;
let lastHook: Originals | null = null;

/**
 * The hook shared by every response of a framework: writeHead/end replaced once, on the
 * framework's own response prototype — the one right above node's ServerResponse, Express's
 * `express.response`, which every app and mounted sub-app inherits, so a sub-app swapping the
 * response's prototype mid-request keeps the hook. Assigning two methods to each response costs
 * microseconds once Express has swapped its prototype (measured). Plain node:http responses have no
 * such prototype: they are hooked one by one (null), never through node's own prototype.
 */
function sharedHookOf(response: ServerResponse): Originals | null {
  const prototype: object | null = Object.getPrototypeOf(response);
  if (prototype === lastPrototype) return lastHook;
  let target = prototype;
  while (target !== null && Object.getPrototypeOf(target) !== NodeServerResponse.prototype) {
    target = Object.getPrototypeOf(target);
  }
  lastPrototype = prototype;
  lastHook = target === null ? null : (hookedPrototypes.get(target) ?? hookPrototype(target));
  return lastHook;
}

function hookPrototype(target: object): Originals {
  const framework = target as ServerResponse;
  const originals: Originals = { writeHead: framework.writeHead, end: framework.end };
  hookedPrototypes.set(target, originals);
  Object.defineProperty(target, 'writeHead', {
    configurable: true,
    writable: true,
    value: function writeHead(this: ServerResponse, ...args: unknown[]): unknown {
      const attached = attachments.get(this);
      if (attached === undefined) return Reflect.apply(originals.writeHead, this, args);
      return writeHeadOf(this, attached, args);
    },
  });
  Object.defineProperty(target, 'end', {
    configurable: true,
    writable: true,
    value: function end(this: ServerResponse, ...args: unknown[]): unknown {
      const attached = attachments.get(this);
      if (attached === undefined) return Reflect.apply(originals.end, this, args);
      return endOf(this, attached, args);
    },
  });
  return originals;
}

function writeHeadWithCookies(this: ServerResponse, ...args: unknown[]): unknown {
  return writeHeadOf(this, attachedTo(this), args);
}

function writeHeadOf(response: ServerResponse, attached: Attached, args: unknown[]): unknown {
  const { kit, session, writeHead } = attached;
  if (!response.headersSent) {
    for (const cookie of kit.manager.setCookies(session))
      response.appendHeader('Set-Cookie', cookie);
    if (!setsCacheControl(args)) {
      for (const [name, value] of kit.cacheHeaders(session, response, hasHeader))
        response.setHeader(name, value);
    }
  }
  return Reflect.apply(writeHead, response, args);
}

function endAfterCommit(this: ServerResponse, ...args: unknown[]): ServerResponse {
  return endOf(this, attachedTo(this), args);
}

function endOf(response: ServerResponse, attached: Attached, args: unknown[]): ServerResponse {
  if (attached.ending) return response;
  attached.ending = true;
  attached.kit.manager.commit(attached.session).then(
    () => Reflect.apply(attached.end, response, args),
    (error: unknown) => answerCommitFailure(response, attached, args, error),
  );
  return response;
}

function hasHeader(response: ServerResponse, name: string): boolean {
  return response.hasHeader(name);
}

/** `writeHead(status, [message], headers)` given a Cache-Control of the app's own. */
function setsCacheControl(args: unknown[]): boolean {
  const headers = args[args.length - 1];
  if (args.length < 2 || typeof headers !== 'object' || headers === null) return false;
  if (Array.isArray(headers)) {
    // A flat [name, value, name, value…] list, or a list of [name, value] pairs.
    return headers.some(
      (entry, index) =>
        (typeof entry === 'string' && index % 2 === 0 && isCacheControl(entry)) ||
        (Array.isArray(entry) && typeof entry[0] === 'string' && isCacheControl(entry[0])),
    );
  }
  return Object.keys(headers as OutgoingHttpHeaders).some(isCacheControl);
}

const isCacheControl = (name: string) => name.toLowerCase() === 'cache-control';

/** Saving failed: an unsent response becomes the error; a streamed one can only end as it is. */
function answerCommitFailure(
  response: ServerResponse,
  attached: Attached,
  args: unknown[],
  error: unknown,
): void {
  attached.kit.report(error);
  if (response.headersSent) {
    Reflect.apply(attached.end, response, args);
    return;
  }
  for (const name of response.getHeaderNames()) response.removeHeader(name);
  const answer = attached.kit.failure(error);
  response.statusCode = answer.status;
  for (const [name, value] of Object.entries(answer.headers)) response.setHeader(name, value);
  Reflect.apply(attached.end, response, [answer.body]);
}

function commitOnClose(this: ServerResponse): void {
  const { kit, session } = attachedTo(this);
  void kit.finishQuietly(session, 'saving the session of an aborted request failed');
}

/** The failure answer when no framework error handler exists (plain node:http). */
function sendFailure(
  kit: AdapterKit<IncomingMessage>,
  response: ServerResponse,
  error: unknown,
): void {
  if (response.headersSent) {
    response.destroy(error instanceof Error ? error : undefined);
    return;
  }
  const answer = kit.failure(error);
  response.statusCode = answer.status;
  for (const [name, value] of Object.entries(answer.headers)) response.setHeader(name, value);
  response.end(answer.body);
}

/**
 * For plain node:http: `http.createServer(withSession(config, async (req, res) => { … }))`. Errors
 * of the session (503) or the handler (500) are answered instead of crashing the process.
 */
export function withSession<Data extends SessionData = AppSessionData>(
  options: SessionMiddlewareOptions,
  handler: (request: SessionRequest<Data>, response: ServerResponse) => unknown,
): ((request: IncomingMessage, response: ServerResponse) => void) & { manager: SessionManager } {
  const { isSecure = requestIsSecure, ...rest } = options;
  const kit = new AdapterKit<IncomingMessage>(rest);
  const middleware = middlewareOf(kit, isSecure);
  const listener = (request: IncomingMessage, response: ServerResponse): void => {
    middleware(request, response, (error) => {
      if (error !== undefined) {
        kit.report(error, 'starting the session failed');
        sendFailure(kit, response, error);
        return;
      }
      Promise.resolve()
        .then(() => handler(request as SessionRequest<Data>, response))
        .catch((failure: unknown) => {
          kit.report(failure, 'the request handler failed');
          sendFailure(kit, response, failure);
        });
    });
  };
  return Object.assign(listener, { manager: kit.manager });
}
