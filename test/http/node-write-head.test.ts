import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { withSession } from '../../src/adapters/node.js';

/** node:http apps often pass their headers to writeHead() itself rather than set them first. */
describe('node:http: cache headers and writeHead(status, headers)', () => {
  const listener = withSession({ driver: 'array' }, (request, response) => {
    request.session.set('name', 'ada');
    if (request.url === '/object') response.writeHead(200, { 'cache-control': 'max-age=5' });
    else if (request.url === '/flat') response.writeHead(200, ['Cache-Control', 'max-age=6']);
    else if (request.url === '/message')
      response.writeHead(200, 'Fine', { 'Cache-Control': 'max-age=7' });
    else response.writeHead(200, { 'Content-Type': 'text/plain' });
    response.end('ok');
  });
  let server: Server;
  let url = '';
  before(async () => {
    server = createServer(listener);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await listener.manager.shutdown();
  });

  for (const [path, cacheControl] of [
    ['/object', 'max-age=5'],
    ['/flat', 'max-age=6'],
    ['/message', 'max-age=7'],
  ] as const) {
    it(`keeps the Cache-Control given to writeHead (${path}) and adds no Expires or Pragma`, async () => {
      const response = await fetch(`${url}${path}`);
      assert.equal(response.headers.get('cache-control'), cacheControl);
      assert.equal(response.headers.get('expires'), null);
      assert.equal(response.headers.get('pragma'), null);
      assert.match(response.headers.getSetCookie()[0] ?? '', /^ci_session=[0-9a-f]{32};/);
      await response.arrayBuffer();
    });
  }

  it('adds the nocache headers when writeHead is given other headers only', async () => {
    const response = await fetch(`${url}/other`);
    assert.equal(response.headers.get('cache-control'), 'no-store, no-cache, must-revalidate');
    assert.equal(response.headers.get('pragma'), 'no-cache');
    assert.equal(response.headers.get('content-type'), 'text/plain');
    await response.arrayBuffer();
  });
});
