/**
 * The keepsake demo: `npm start`, then open the printed URL.
 *   PORT                                  port to listen on (default 3000; 0 = any free port)
 *   KEEPSAKE_SAVE_PATH or SESSION_DIR     session directory (default: keepsake-sessions in the OS temp directory)
 *   KEEPSAKE_TIME_TO_UPDATE               seconds between session ID rotations (default 300)
 */
import { createDemoApp } from './app.js';

const port = Number(process.env.PORT ?? 3000);
const savePath = process.env.KEEPSAKE_SAVE_PATH ?? process.env.SESSION_DIR ?? '';
const timeToUpdate = Number(process.env.KEEPSAKE_TIME_TO_UPDATE ?? 300);

const app = createDemoApp({ savePath, timeToUpdate });
const server = app.listen(port, '127.0.0.1', () => {
  const address = server.address();
  const actualPort = typeof address === 'object' && address !== null ? address.port : port;
  process.stdout.write(`keepsake demo on http://127.0.0.1:${actualPort}/\n`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => server.close(() => process.exit(0)));
}
