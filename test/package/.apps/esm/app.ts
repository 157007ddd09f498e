/**
 * An Express app on the installed keepsake package (ES module, TypeScript): a visit counter, a
 * flash message and login/logout. test/package/packed.test.ts drives it over HTTP.
 */
import express from 'express';
import { session } from 'keepsake/express';

const app = express();
app.use(session({ driver: 'file', savePath: process.env.SAVE_PATH }));

app.get('/version', (_req, res) => {
  res.json({ node: process.version });
});

app.get('/visits', (req, res) => {
  const visits = (req.session.get('visits') ?? 0) + 1;
  // @ts-expect-error SessionDataMap declares visits as a number
  req.session.set('visits', String(visits));
  req.session.set('visits', visits);
  res.json({ visits });
});

app.post('/flash', (req, res) => {
  req.session.setFlashdata('notice', 'Saved!');
  res.status(204).end();
});

app.get('/flash', (req, res) => {
  const notice: string | null = req.session.getFlashdata('notice');
  res.json({ notice });
});

app.post('/login', async (req, res) => {
  await req.session.regenerate(true);
  req.session.set('user', { name: String(req.query.name) });
  res.status(204).end();
});

app.get('/me', (req, res) => {
  const user = req.session.get('user');
  res.status(user === null ? 401 : 200).json({ user: user?.name ?? null });
});

app.post('/logout', async (req, res) => {
  await req.session.destroy();
  res.status(204).end();
});

const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(`listening ${typeof address === 'object' && address !== null ? address.port : ''}`);
});
