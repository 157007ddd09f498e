/**
 * What a client and an operator see of a store outage: the 503 body names no host, port, path or
 * stack (even through Express's default error handler, which prints the stack outside
 * production), and the operator's log gets the first failure with its cause at once, one summary
 * per interval, and one line when the store is back.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import express from 'express';
import { session } from '../../src/adapters/express.js';
import { RecordingDriver } from '../helpers/recording-driver.js';

describe('a store outage, as the client and the operator see it', () => {
  it('answers a bare 503 through Express’s default error handler, and logs the cause once, then the recovery', async () => {
    const store = new RecordingDriver();
    const logs: string[] = [];
    const middleware = session({
      driver: store.driver,
      logger: {
        debug: () => {},
        warn: (message) => logs.push(`warn ${message}`),
        error: (message, error) =>
          logs.push(`error ${message}${error instanceof Error ? ` | ${error.message}` : ''}`),
      },
    });
    const app = express();
    app.use(middleware);
    app.get('/', (request, response) => {
      request.session.set('n', 1);
      response.send('ok');
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    try {
      const first = await fetch(url);
      const cookie = first.headers.getSetCookie()[0]?.split(';')[0] ?? '';
      store.failReads = new Error('connect ECONNREFUSED 10.1.2.3:11299 (/var/run/store.sock)');
      const answers: string[] = [];
      for (let request = 0; request < 5; request += 1) {
        const failed = await fetch(url, { headers: { cookie } });
        assert.equal(failed.status, 503);
        answers.push(await failed.text());
      }
      for (const body of answers) {
        assert.doesNotMatch(body, /10\.1\.2\.3|11299|store\.sock|\/work|\n\s+at /);
        assert.match(body, /session store failed during lock and read/);
      }
      const failures = logs.filter((line) => line.startsWith('error'));
      assert.equal(failures.length, 1, `one line for five failures: ${failures.join(' / ')}`);
      assert.match(
        failures[0] ?? '',
        /"array" session store failed during lock and read.*10\.1\.2\.3:11299/,
      );
      store.failReads = undefined;
      assert.equal((await fetch(url, { headers: { cookie } })).status, 200);
      const recovered = logs.filter((line) => line.includes('answers again'));
      assert.equal(recovered.length, 1);
      assert.match(recovered[0] ?? '', /after [0-9.]+ s and 5 failed calls/);
    } finally {
      server.close();
      await middleware.manager.shutdown();
    }
  });
});
