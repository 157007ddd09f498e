import type { IncomingMessage } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { AdapterKit, type AdapterOptions } from '../adapter-kit.js';
import { SessionError } from '../errors.js';
import type { Session } from '../index.js';
import type { SessionManager } from '../manager.js';

/** Options of the middleware: the session configuration plus per-request choices. */
export interface HonoSessionOptions extends AdapterOptions<Context> {
  /**
   * The client IP used by `matchIP`. Default: the socket address under `@hono/node-server` (what
   * its `getConnInfo` reports), else ''. On other runtimes, or behind a proxy you trust, pass your
   * own, e.g. `(c) => getConnInfo(c).remote.address ?? ''` from your runtime's `hono/<runtime>`.
   */
  getIp?: (c: Context) => string;
  /**
   * Whether the request arrived over HTTPS, for `cookie.secure: 'auto'`. Default: the scheme of
   * `c.req.url`. Behind a proxy that ends TLS, the URL says http: read the proxy's header here,
   * and only if every request comes through that proxy, e.g.
   * `(c) => c.req.header('x-forwarded-proto') === 'https'`.
   */
  isSecure?: (c: Context) => boolean;
}

/** Hono middleware; `manager` is exposed for ready(), shutdown() and collectGarbage(). */
export type HonoSessionMiddleware = MiddlewareHandler & { readonly manager: SessionManager };

declare module 'hono' {
  interface ContextVariableMap {
    /** The keepsake session of this request (`c.get('session')`); typed by `SessionDataMap`. */
    session: Session;
  }
}

interface NodeServerBindings {
  incoming?: IncomingMessage;
  server?: { incoming?: IncomingMessage };
}

/** @hono/node-server passes the node request as `c.env.incoming` (or `c.env.server.incoming`). */
function nodeServerIp(c: Context): string {
  const bindings = c.env as NodeServerBindings | undefined;
  const incoming = bindings?.incoming ?? bindings?.server?.incoming;
  return incoming?.socket?.remoteAddress ?? '';
}

/**
 * Session middleware for Hono: `app.use(session({ ...config }))`, then `c.get('session')` is the
 * Session. The session is saved after the handler ran (also when it threw) and before the response
 * leaves; a lock timeout or store failure becomes an `HTTPException` with status 503 (its `cause`
 * is the keepsake error), which `app.onError` receives. Responses of requests with a session get
 * the `cacheLimiter` headers unless the handler set its own Cache-Control.
 */
export function session(options: HonoSessionOptions = {}): HonoSessionMiddleware {
  const { getIp = nodeServerIp, isSecure = urlIsHttps, ...rest } = options;
  const kit = new AdapterKit<Context>(rest);
  const middleware: MiddlewareHandler = async (c, next) => {
    const started = await kit
      .start(c, {
        cookieHeader: c.req.header('cookie'),
        ip: () => getIp(c),
        requestedWith: c.req.header('x-requested-with'),
        secure: () => isSecure(c),
      })
      .catch(asHttpException);
    c.set('session', started);
    // Hono turns a handler's error into the onError response inside next(), so this always runs.
    await next();
    const cookies = await kit.finish(started).catch(asHttpException);
    for (const cookie of cookies) c.header('Set-Cookie', cookie, { append: true });
    for (const [name, value] of kit.cacheHeaders(started, c.res.headers, headersHave))
      c.header(name, value);
  };
  return Object.assign(middleware, { manager: kit.manager });
}

function urlIsHttps(c: Context): boolean {
  return c.req.url.startsWith('https:');
}

function headersHave(headers: Headers, name: string): boolean {
  return headers.has(name);
}

function asHttpException(error: unknown): never {
  if (error instanceof SessionError && error.status === 503) {
    throw new HTTPException(503, { message: error.message, cause: error });
  }
  throw error;
}

export type { SessionManager } from '../manager.js';
