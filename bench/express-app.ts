import express, { type Express } from 'express';
import type { BenchApp } from './harness.js';
import { ROUTES } from './workloads.js';

/** An Express app serving every workload's route with `built`'s session middleware (if any). */
export function expressApp(built: BenchApp): Express {
  const app = express();
  app.set('etag', false);
  if (built.middleware !== null) app.use(built.middleware);
  for (const [route, handle] of Object.entries(ROUTES)) {
    app.get(route, (request, response) => {
      const { status, body } = handle(built.session, request, request.url);
      response.status(status).json(body);
    });
  }
  return app;
}
