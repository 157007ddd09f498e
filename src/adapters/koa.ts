import type { Context, Middleware, Next } from 'koa';
import type { SessionConfig } from '../config.js';
import { SessionManager } from '../manager.js';
import type { Session } from '../session.js';

/** Options of the middleware: the session configuration plus per-request choices. */
export interface KoaSessionOptions extends SessionConfig {
  /** Requests whose session is read without a lock and cannot be changed (e.g. a polling route). */
  readOnly?: (ctx: Context) => boolean;
}

/** Koa middleware; `manager` is exposed for shutdown() and collectGarbage(). */
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
  const { readOnly, ...config } = options;
  const manager = new SessionManager(config);
  const middleware = async (ctx: Context, next: Next): Promise<void> => {
    const ajax = ctx.get('x-requested-with').toLowerCase() === 'xmlhttprequest';
    const started = await manager.start({
      cookieHeader: ctx.headers.cookie,
      ip: ctx.ip,
      ajax,
      readOnly: readOnly?.(ctx) ?? false,
    });
    ctx.session = started;
    try {
      await next();
    } catch (error) {
      // Koa's error response drops every header, so only the lock and the data matter here.
      await manager.commit(started).catch((commitError: unknown) => {
        manager.config.logger.error('keepsake: saving the session failed', commitError);
      });
      throw error;
    }
    await manager.commit(started);
    for (const cookie of manager.setCookies(started)) ctx.append('Set-Cookie', cookie);
  };
  return Object.assign(middleware, { manager });
}

export type { SessionManager } from '../manager.js';
