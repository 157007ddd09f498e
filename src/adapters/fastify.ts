import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AdapterKit, type AdapterOptions } from '../adapter-kit.js';
import type { Session } from '../index.js';
import type { SessionManager } from '../manager.js';

/** Options of the plugin: the session configuration plus `readOnly(request)`. */
export type FastifySessionOptions = AdapterOptions<FastifyRequest>;

/** The plugin; `manager` is exposed for ready() and collectGarbage() (shutdown() runs on `app.close()`). */
export interface FastifySessionPlugin {
  (instance: FastifyInstance): Promise<void>;
  readonly manager: SessionManager;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The keepsake session of this request; typed by `SessionDataMap`. */
    session: Session;
  }
}

/**
 * Session plugin for Fastify: `await app.register(session({ ...config }))`, then
 * `request.session` is the Session on every route of the app (the plugin is not encapsulated).
 * The session is saved before the reply is sent; a lock timeout or store failure reaches the
 * error handler as a 503. The client IP for `matchIP` is `request.ip`, and the scheme for
 * `cookie.secure: 'auto'` is `request.protocol` (both honour `trustProxy`). Responses of requests
 * with a session get the `cacheLimiter` headers unless the route set its own Cache-Control.
 */
export function session(options: FastifySessionOptions = {}): FastifySessionPlugin {
  const kit = new AdapterKit<FastifyRequest>(options);
  /** Requests whose session was already saved and whose cookies were set by onSend. */
  const finished = new WeakSet<FastifyRequest>();
  const finishQuietly = async (request: FastifyRequest) => {
    const started = request.session as Session | null;
    if (started !== null)
      await kit.finishQuietly(started, 'saving the session of an ended request failed');
  };

  const plugin = async (instance: FastifyInstance): Promise<void> => {
    instance.decorateRequest('session', null as unknown as Session);
    instance.addHook('onRequest', async (request: FastifyRequest) => {
      request.session = await kit.start(request, {
        cookieHeader: request.headers.cookie,
        ip: () => request.ip,
        requestedWith: request.headers['x-requested-with'] as string | undefined,
        secure: () => request.protocol === 'https',
      });
    });
    instance.addHook(
      'onSend',
      async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
        const started = request.session as Session | null;
        if (started === null || finished.has(request)) return payload;
        finished.add(request);
        // A failure here goes to the error handler, whose reply passes this hook again untouched.
        for (const cookie of await kit.finish(started)) reply.header('set-cookie', cookie);
        for (const [name, value] of kit.cacheHeaders(started, reply, replyHas))
          reply.header(name, value);
        return payload;
      },
    );
    // Hijacked replies skip onSend; aborted requests may never reply: release their lock here.
    instance.addHook('onResponse', finishQuietly);
    instance.addHook('onRequestAbort', finishQuietly);
    instance.addHook('onClose', async () => kit.manager.shutdown());
  };
  return Object.assign(plugin, {
    manager: kit.manager,
    // fastify-plugin's marker: the hooks apply to the whole app, not only to this plugin's scope.
    [Symbol.for('skip-override')]: true,
    [Symbol.for('fastify.display-name')]: 'keepsake',
  });
}

function replyHas(reply: FastifyReply, name: string): boolean {
  return reply.hasHeader(name);
}

export type { SessionManager } from '../manager.js';
