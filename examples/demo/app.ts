import { readFileSync } from 'node:fs';
import express, { type Express, type Request } from 'express';
import { session } from '../../src/adapters/express.js';
import { defaultSavePath } from '../../src/drivers/file.js';
import { page } from './html.js';
import { collectMetrics } from './metrics.js';
import { homePage } from './views.js';

export interface DemoOptions {
  /** Session directory ('' = the driver's default under the OS temp directory). */
  savePath: string;
  /** Seconds between automatic session ID rotations. */
  timeToUpdate: number;
}

const asset = (name: string) => readFileSync(new URL(`./public/${name}`, import.meta.url), 'utf8');
const OFFER_SECONDS = 60;

function text(value: unknown, maxLength: number): string {
  return typeof value === 'string' ? value.trim().slice(0, maxLength) : '';
}

/** The demo site: an Express app with keepsake's default (file) driver. */
export function createDemoApp(options: DemoOptions): Express {
  const sessions = session({
    savePath: options.savePath,
    timeToUpdate: options.timeToUpdate,
    // The counter's polling endpoint reads the session without locking it.
    readOnly: (request) => request.url === '/api/count',
  });
  const metrics = collectMetrics();
  const app = express();
  const css = asset('demo.css');
  const js = asset('demo.js');

  app.disable('x-powered-by');
  app.use((_request, response, next) => {
    response.set('Content-Security-Policy', "default-src 'self'; form-action 'self'");
    response.set('X-Content-Type-Options', 'nosniff');
    next();
  });
  app.get('/demo.css', (_request, response) => {
    response.type('text/css').send(css);
  });
  app.get('/demo.js', (_request, response) => {
    response.type('text/javascript').send(js);
  });
  app.use(express.urlencoded({ extended: false, limit: '4kb' }));
  app.use(sessions);

  app.get('/', (request, response) => {
    const now = Date.now();
    const user = request.session.get('user');
    const offer = request.session.getTempdata('offer') as { text: string; until: number } | null;
    const lastRotation = request.session.get('__ci_last_regenerate');
    const nextRotationMs =
      options.timeToUpdate > 0 && typeof lastRotation === 'number'
        ? (lastRotation + options.timeToUpdate) * 1000
        : null;
    const notice = request.session.getFlashdata('notice');
    // A visit that stores nothing gets no session (and no cookie): the ID is not the cookie's.
    const stored = request.headers.cookie?.includes(`ci_session=${request.session.id}`) === true;
    response.type('html').send(
      page(
        'keepsake demo',
        homePage({
          user: typeof user === 'string' ? user : null,
          notice: typeof notice === 'string' ? notice : null,
          offer:
            offer === null
              ? null
              : { text: offer.text, secondsLeft: Math.max(0, Math.ceil(offer.until - now / 1000)) },
          note: text(request.session.get('note'), 500),
          count: Number(request.session.get('count') ?? 0),
          sessionId: request.session.id,
          stored,
          metrics,
          nextRotation:
            nextRotationMs === null
              ? null
              : {
                  at: new Date(nextRotationMs),
                  inSeconds: Math.max(0, Math.round((nextRotationMs - now) / 1000)),
                },
          savePath: options.savePath || defaultSavePath(),
        }),
      ),
    );
  });

  app.post('/login', async (request: Request, response) => {
    const name = text(request.body?.name, 40);
    if (name === '') {
      request.session.setFlashdata('notice', 'Please type a name.');
      response.redirect(303, '/');
      return;
    }
    // A new ID at every privilege change, so an ID known before login is worthless after it.
    await request.session.regenerate(true);
    request.session.set('user', name);
    request.session.setFlashdata('notice', `Welcome, ${name}!`);
    const until = Math.floor(Date.now() / 1000) + OFFER_SECONDS;
    request.session.setTempdata(
      'offer',
      { text: 'New here? This welcome offer is tempdata.', until },
      OFFER_SECONDS,
    );
    response.redirect(303, '/');
  });

  app.post('/note', (request: Request, response) => {
    request.session.set('note', text(request.body?.note, 500));
    request.session.setFlashdata('notice', 'Saved!');
    response.redirect(303, '/');
  });

  app.post('/logout', async (request, response) => {
    await request.session.destroy();
    response.redirect(303, '/');
  });

  app.post('/api/increment', (request, response) => {
    const count = Number(request.session.get('count') ?? 0) + 1;
    request.session.set('count', count);
    response.json({ count });
  });

  app.get('/api/metrics', (_request, response) => {
    response.json(metrics);
  });

  app.get('/api/count', (request, response) => {
    response.json({ count: Number(request.session.get('count') ?? 0) });
  });

  return app;
}
