import type { ServerResponse } from 'node:http';
import type { Context, Middleware, Next } from 'koa';
import { AdapterKit, type AdapterOptions } from '../adapter-kit.js';
import type { Session } from '../index.js';
import type { SessionManager } from '../manager.js';

/** Options of the middleware: the session configuration plus `readOnly(ctx)`. */
export type KoaSessionOptions = AdapterOptions<Context>;

/** Koa middleware; `manager` is exposed for ready(), shutdown() and collectGarbage(). */
export interface KoaSessionMiddleware extends Middleware {
  readonly manager: SessionManager;
}

declare module 'koa' {
  interface ExtendableContext {
    /** The keepsake session of this request; typed by `SessionDataMap`. */
    session: Session;
  }
}

/**
 * Session middleware for Koa: `app.use(session({ ...config }))`, then `ctx.session` is the Session.
 * The session is saved after the downstream middleware finished and before Koa sends the body, also
 * when it threw; a lock timeout or store failure is thrown as a 503 (`err.status`). The client IP
 * for `matchIP` is `ctx.ip`, and the scheme for `cookie.secure: 'auto'` is `ctx.secure` (both
 * honour `app.proxy`). Responses of requests with a session get the `cacheLimiter` headers unless
 * the downstream middleware set its own Cache-Control.
 */
export function session(options: KoaSessionOptions = {}): KoaSessionMiddleware {
  const kit = new AdapterKit<Context>(options);
  const middleware = async (ctx: Context, next: Next): Promise<void> => {
    const started = await kit.start(ctx, {
      cookieHeader: ctx.headers.cookie,
      ip: () => ctx.ip,
      requestedWith: ctx.get('x-requested-with'),
      secure: () => ctx.secure,
    });
    ctx.session = started;
    try {
      await next();
    } catch (error) {
      // Koa's error response drops every header, so only the lock and the data matter here.
      await kit.finishQuietly(started);
      throw error;
    }
    for (const cookie of await kit.finish(started)) ctx.append('Set-Cookie', cookie);
    for (const [name, value] of kit.cacheHeaders(started, ctx.res, responseHas))
      ctx.set(name, value);
  };
  return Object.assign(middleware, { manager: kit.manager });
}

function responseHas(response: ServerResponse, name: string): boolean {
  return response.hasHeader(name);
}

export type { SessionManager } from '../manager.js';
