import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { SessionConfig } from '../config.js';
import { SessionManager } from '../manager.js';
import type { Session } from '../session.js';

/** Options of the plugin: the session configuration plus per-request choices. */
export interface FastifySessionOptions extends SessionConfig {
  /** Requests whose session is read without a lock and cannot be changed (e.g. a polling route). */
  readOnly?: (request: FastifyRequest) => boolean;
}

/** The plugin; `manager` is exposed for collectGarbage() (shutdown() runs on `app.close()`). */
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
 * error handler as a 503. The client IP for `matchIP` is `request.ip` (honours `trustProxy`).
 */
export function session(options: FastifySessionOptions = {}): FastifySessionPlugin {
  const { readOnly, ...config } = options;
  const manager = new SessionManager(config);
  /** Requests whose session was already saved and whose cookies were set by onSend. */
  const finished = new WeakSet<FastifyRequest>();

  const commitQuietly = (request: FastifyRequest): void => {
    const started = request.session as Session | null;
    if (started === null) return;
    manager.commit(started).catch((error: unknown) => {
      manager.config.logger.error('keepsake: saving the session of an ended request failed', error);
    });
  };

  const plugin = async (instance: FastifyInstance): Promise<void> => {
    instance.decorateRequest('session', null as unknown as Session);
    instance.addHook('onRequest', async (request: FastifyRequest) => {
      const ajax = request.headers['x-requested-with'];
      request.session = await manager.start({
        cookieHeader: request.headers.cookie,
        ip: request.ip,
        ajax: typeof ajax === 'string' && ajax.toLowerCase() === 'xmlhttprequest',
        readOnly: readOnly?.(request) ?? false,
      });
    });
    instance.addHook(
      'onSend',
      async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
        const started = request.session as Session | null;
        if (started === null || finished.has(request)) return payload;
        finished.add(request);
        // A failure here goes to the error handler, whose reply passes this hook again untouched.
        await manager.commit(started);
        for (const cookie of manager.setCookies(started)) reply.header('set-cookie', cookie);
        return payload;
      },
    );
    // Hijacked replies skip onSend; aborted requests may never reply: release their lock here.
    instance.addHook('onResponse', async (request: FastifyRequest) => commitQuietly(request));
    instance.addHook('onRequestAbort', async (request: FastifyRequest) => commitQuietly(request));
    instance.addHook('onClose', async () => manager.shutdown());
  };
  Object.assign(plugin, {
    manager,
    // fastify-plugin's marker: the hooks apply to the whole app, not only to this plugin's scope.
    [Symbol.for('skip-override')]: true,
    [Symbol.for('fastify.display-name')]: 'keepsake',
  });
  return plugin as FastifySessionPlugin;
}

export type { SessionManager } from '../manager.js';
