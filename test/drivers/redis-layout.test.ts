/** The redis driver's layout option, checked when the driver is made (the layout itself: test/codeigniter/shared-redis.test.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { redis } from '../../src/drivers/redis.js';
import { SessionConfigError } from '../../src/errors.js';

describe('redis driver: layout option', () => {
  it('refuses an unknown layout', () => {
    assert.throws(
      () => redis({ url: 'tcp://127.0.0.1:6379', layout: 'php' as 'codeigniter' }),
      (error: unknown) =>
        error instanceof SessionConfigError &&
        /'keepsake' or 'codeigniter', got "php"/.test(error.message),
    );
    assert.equal(redis({ url: 'tcp://127.0.0.1:6379', layout: 'codeigniter' }).name, 'redis');
  });
});
