/**
 * Must compile (with session-data.ts in the program): typed keys read and write with their
 * declared types; other keys stay open.
 */
import type { FastifyRequest } from 'fastify';
import type { Context as HonoContext } from 'hono';
import type { AppSessionData, Session } from 'keepsake';
import type {} from 'keepsake/express';
import type {} from 'keepsake/fastify';
import { withSession } from 'keepsake/fetch';
import type {} from 'keepsake/hono';
import type {} from 'keepsake/koa';
import { withSession as withNodeSession } from 'keepsake/node';
import type { Context as KoaContext } from 'koa';

type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
declare function exact<T extends true>(): void;

declare const session: Session;

const count = session.get('count');
exact<Equal<typeof count, number | null>>();
const user = session.get('user');
exact<Equal<typeof user, { name: string; admin: boolean } | null>>();
session.set('count', 1);
session.set('count', null);
session.set({ count: 2, notice: 'hello' });
session.set('undeclared', { anything: true });
const undeclared = session.get('undeclared');
exact<Equal<typeof undeclared, unknown>>();

session.setFlashdata('notice', 'saved');
session.setFlashdata({ notice: 'saved' });
const notice = session.getFlashdata('notice');
exact<Equal<typeof notice, string | null>>();

session.setTempdata('count', 3, 60);
session.setTempdata({ count: 3 }, null, 60);
const temp = session.getTempdata('count');
exact<Equal<typeof temp, number | null>>();
session.markAsTempdata({ count: 60 });
session.remove('count');

// Every adapter's session carries the declared shape.
declare const expressRequest: import('express').Request;
const fromExpress = expressRequest.session.get('count');
exact<Equal<typeof fromExpress, number | null>>();

declare const fastifyRequest: FastifyRequest;
const fromFastify = fastifyRequest.session.get('count');
exact<Equal<typeof fromFastify, number | null>>();

declare const koaContext: KoaContext;
const fromKoa = koaContext.session.get('count');
exact<Equal<typeof fromKoa, number | null>>();

declare const honoContext: HonoContext;
const fromHono = honoContext.get('session').get('count');
exact<Equal<typeof fromHono, number | null>>();

withSession({ driver: 'array' }, (_request, fetchSession) => {
  const fromFetch = fetchSession.get('count');
  exact<Equal<typeof fromFetch, number | null>>();
  return new Response('ok');
});

// node:http's withSession types the session by the declaration too, and takes a shape directly.
withNodeSession({ driver: 'array' }, (request, response) => {
  const fromNode = request.session.get('count');
  exact<Equal<typeof fromNode, number | null>>();
  response.end();
});
withNodeSession<AppSessionData>({ driver: 'array' }, (request, response) => {
  const fromNode = request.session.get('count');
  exact<Equal<typeof fromNode, number | null>>();
  response.end();
});
