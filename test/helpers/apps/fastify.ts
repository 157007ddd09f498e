import Fastify from 'fastify';
import { session } from '../../../src/adapters/fastify.js';
import type { AppFactory } from './types.js';
import { isReadOnly, queryOf, urlOf } from './types.js';

/** Fastify with the keepsake plugin registered at the root; its default error handler. */
export const fastifyApp: AppFactory = {
  framework: 'Fastify',
  async start(options, routes) {
    const host = options.host ?? '127.0.0.1';
    const app = Fastify({
      trustProxy: options.trustProxy ?? false,
      ...(options.tls === undefined ? {} : { https: options.tls }),
    });
    const plugin = session({
      ...options.session,
      readOnly: (request) => isReadOnly(options, request.url),
    });
    await app.register(plugin);
    for (const [path, route] of Object.entries(routes)) {
      app.get(path, async (request, reply) => {
        const body = await route({
          session: request.session,
          query: queryOf(request.url),
          setCookie: (value) => reply.header('set-cookie', value),
          setHeader: (name, value) => reply.header(name, value),
        });
        if (typeof body === 'string') return reply.type('text/plain').send(body);
        return body;
      });
    }
    await app.listen({ port: 0, host });
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    return {
      url: urlOf(host, port, options.tls !== undefined),
      manager: plugin.manager,
      async close() {
        app.server.closeAllConnections();
        await app.close();
      },
    };
  },
};
