/**
 * Must not compile (with session-data.ts in the program): every line marked `// error` below is a
 * type error, and no other line is. test/types/types.test.ts checks both.
 */
import type { FastifyRequest } from 'fastify';
import type { Context as HonoContext } from 'hono';
import type { Session } from 'keepsake';
import type {} from 'keepsake/express';
import type {} from 'keepsake/fastify';
import { withSession } from 'keepsake/fetch';
import type {} from 'keepsake/hono';
import type {} from 'keepsake/koa';
import type { Context as KoaContext } from 'koa';

declare const session: Session;

session.set('count', 'x'); // error
session.set({ count: 'x' }); // error
session.set('user', { name: 'ada' }); // error
session.setFlashdata('notice', 42); // error
session.setFlashdata({ notice: 42 }); // error
session.setTempdata('count', 'x', 60); // error
const asText: string = session.get('count'); // error
const flashAsNumber: number = session.getFlashdata('notice'); // error
const tempAsText: string = session.getTempdata('count'); // error

declare const expressRequest: import('express').Request;
expressRequest.session.set('count', 'x'); // error

declare const fastifyRequest: FastifyRequest;
fastifyRequest.session.set('count', 'x'); // error

declare const koaContext: KoaContext;
koaContext.session.set('count', 'x'); // error

declare const honoContext: HonoContext;
honoContext.get('session').set('count', 'x'); // error

withSession({ driver: 'array' }, (_request, fetchSession) => {
  fetchSession.set('count', 'x'); // error
  return new Response('ok');
});

export { asText, flashAsNumber, tempAsText };
