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
 * for `matchIP` is `ctx.ip` (honours `app.proxy`).
 */
export function session(options: KoaSessionOptions = {}): KoaSessionMiddleware {
  const kit = new AdapterKit<Context>(options);
  const middleware = async (ctx: Context, next: Next): Promise<void> => {
    const started = await kit.start(ctx, {
      cookieHeader: ctx.headers.cookie,
      ip: () => ctx.ip,
      requestedWith: ctx.get('x-requested-with'),
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
  };
  return Object.assign(middleware, { manager: kit.manager });
}

export type { SessionManager } from '../manager.js';
