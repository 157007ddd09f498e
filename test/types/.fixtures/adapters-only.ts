/**
 * Must compile (with session-data.ts in the program): an app that imports an adapter only, never
 * 'keepsake' itself, as README.md's first example does. The declaration types it all the same.
 */
import express from 'express';
import { session } from 'keepsake/express';

type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
declare function exact<T extends true>(): void;

const app = express();
app.use(session({ driver: 'array' }));
app.get('/', (req, res) => {
  const count = req.session.get('count');
  exact<Equal<typeof count, number | null>>();
  // @ts-expect-error a declared key takes values of its declared type only
  req.session.set('count', 'x');
  res.send(String(count));
});

export { app };
