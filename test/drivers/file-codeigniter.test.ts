/** The file driver's layout option, checked when the driver is made (the layout itself: test/codeigniter/shared-file.test.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { file } from '../../src/drivers/file.js';
import { SessionConfigError } from '../../src/errors.js';

describe('file driver: layout option', () => {
  it("refuses an unknown layout, and mkdir locks with CodeIgniter's layout (PHP would not see them)", () => {
    assert.throws(
      () => file({ directory: '/tmp/keepsake-layout', layout: 'php' as 'codeigniter' }),
      (error: unknown) =>
        error instanceof SessionConfigError &&
        /'keepsake' or 'codeigniter', got "php"/.test(error.message),
    );
    assert.throws(
      () => file({ directory: '/tmp/keepsake-layout', layout: 'codeigniter', lock: 'mkdir' }),
      (error: unknown) =>
        error instanceof SessionConfigError && /needs lock: 'flock'/.test(error.message),
    );
    assert.equal(file({ directory: '/tmp/keepsake-layout', layout: 'codeigniter' }).name, 'file');
  });
});
