import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import fc from 'fast-check';
import { session } from '../src/adapters/express.js';
import { SessionManager } from '../src/manager.js';
import { RecordingDriver } from './helpers/recording-driver.js';

const HEX_ID = /^[0-9a-f]{32}$/;

/** Cookie values an attacker or a broken client might send. */
const cookieValue = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ minLength: 500, maxLength: 9000 }),
  fc.stringMatching(/^[0-9a-fA-F]{30,34}$/),
  fc.stringMatching(/^[0-9A-F]{32}$/),
  fc.constantFrom('../../../../etc/passwd', '..%2F..%2Fetc', '/tmp/x', 'a/b', '\\..\\', '%00', ''),
  fc.stringMatching(/^[0-9a-f]{32}$/).map((id) => `../${id}`),
  fc.stringMatching(/^[0-9a-f]{32}$/).map((id) => `"${id}"x`),
);

/** Whole Cookie headers: the session cookie (maybe twice), other cookies, odd separators. */
const cookieHeader = fc
  .tuple(
    fc.array(
      fc.tuple(fc.constantFrom('ci_session', 'other', 'CI_SESSION', ' ci_session'), cookieValue),
      {
        maxLength: 4,
      },
    ),
    fc.constantFrom('; ', ';', ',', ';;', '\t;'),
  )
  .map(([pairs, separator]) => pairs.map(([name, value]) => `${name}=${value}`).join(separator));

describe('cookie fuzzing: the manager', () => {
  it('never lets a malformed or unknown ID reach the driver as a session, and never throws', async () => {
    const handler = new RecordingDriver();
    const manager = new SessionManager({ driver: handler.driver, gcProbability: 0 });
    const known = await manager.start({ cookieHeader: undefined, ip: '127.0.0.1', ajax: false });
    known.set('owner', 'real');
    await manager.commit(known);
    await fc.assert(
      fc.asyncProperty(cookieHeader, async (header) => {
        const started = await manager.start({ cookieHeader: header, ip: '127.0.0.1', ajax: false });
        const sentValidId = /ci_session=([0-9a-f]{32})(;|$)/.exec(header)?.[1];
        if (started.id !== known.id) {
          assert.equal(started.get('owner'), null);
          assert.notEqual(started.id, sentValidId);
        }
        await manager.commit(started);
      }),
      { numRuns: 4000 },
    );
    for (const key of handler.keysSeen()) assert.match(key.id, HEX_ID);
  });
});

describe('cookie fuzzing: raw HTTP through Express', () => {
  const handler = new RecordingDriver();
  let port = 0;
  let closeServer: () => Promise<void> = async () => {};
  before(async () => {
    const app = express();
    app.use(session({ driver: handler.driver, gcProbability: 0 }));
    app.get('/', (request, response) => {
      request.session.set('seen', true);
      response.type('text').send(request.session.id);
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    port = (server.address() as AddressInfo).port;
    closeServer = () => new Promise((resolve) => server.close(() => resolve()));
  });
  after(() => closeServer());

  /** One request with raw header bytes (binary and all), as a misbehaving client would send them. */
  function rawRequest(header: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (chunk) => chunks.push(chunk));
      socket.on('error', reject);
      socket.on('end', () => {
        const text = Buffer.concat(chunks).toString('latin1');
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
        resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
      });
      const cleanHeader = header.replace(/[\r\n]/g, '');
      socket.end(
        Buffer.concat([
          Buffer.from('GET / HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\nCookie: ', 'latin1'),
          Buffer.from(cleanHeader, 'utf8'),
          Buffer.from('\r\n\r\n', 'latin1'),
        ]),
      );
    });
  }

  it('answers every request (200, or 400 from Node for unparseable headers) and stays up', async () => {
    await fc.assert(
      fc.asyncProperty(cookieHeader, async (header) => {
        const { status, body } = await rawRequest(header);
        assert.ok(status === 200 || status === 400 || status === 431, `status ${status}`);
        if (status === 200) {
          assert.match(body, HEX_ID);
          assert.ok(!header.includes(body), 'a client-chosen ID was adopted');
        }
      }),
      { numRuns: 1500 },
    );
    const { status } = await rawRequest('ci_session=ok');
    assert.equal(status, 200);
    for (const key of handler.keysSeen()) assert.match(key.id, HEX_ID);
  });
});
