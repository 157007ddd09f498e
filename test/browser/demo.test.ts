import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { access, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { servicesRequired } from '../helpers/services.js';

const CHROMIUM = '/usr/bin/chromium';

/**
 * Like serviceSkip: a skip reason when Debian's Chromium is not installed on a developer machine,
 * and an error when KEEPSAKE_REQUIRE_SERVICES=1 (CI installs it in .ci/run).
 */
async function browserSkip(): Promise<string | false> {
  try {
    await access(CHROMIUM);
    return false;
  } catch {
    const message = `Chromium is not installed at ${CHROMIUM}`;
    if (servicesRequired)
      throw new Error(`${message}, and KEEPSAKE_REQUIRE_SERVICES=1 requires it.`);
    process.stderr.write(
      `\n*** SKIPPING the browser test: ${message}. Run apt-get install -y chromium to run it. ***\n\n`,
    );
    return `${message} (skipped; set KEEPSAKE_REQUIRE_SERVICES=1 to make this a failure)`;
  }
}

const skip = await browserSkip();
const demoServer = fileURLToPath(new URL('../../examples/demo/server.ts', import.meta.url));

/** Starts `npm start`'s server on a free port with its own session directory; resolves its URL. */
async function startDemo(savePath: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', demoServer], {
    env: { ...process.env, PORT: '0', KEEPSAKE_SAVE_PATH: savePath },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the demo did not start in 20 s')), 20_000);
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      const found = /(http:\/\/\S+)/.exec(output);
      if (found?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the demo exited (${code}) before printing its URL`));
    });
  });
  return { child, url };
}

async function sessionId(page: Page): Promise<string> {
  return (await page.locator('#session-id').textContent()) ?? '';
}

describe('the demo in a real browser', { skip }, () => {
  let browser: Browser | undefined;
  let demo: { child: ChildProcess; url: string } | undefined;
  let savePath = '';

  before(async () => {
    savePath = await mkdtemp(join(tmpdir(), 'keepsake-demo-'));
    demo = await startDemo(join(savePath, 'sessions'));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  after(async () => {
    await browser?.close();
    if (demo !== undefined && demo.child.exitCode === null) {
      const exited = once(demo.child, 'exit');
      demo.child.kill('SIGKILL');
      await exited;
    }
    await rm(savePath, { recursive: true, force: true });
  });

  it('logs in, flashes once, counts 20 parallel increments, logs out', async () => {
    assert.ok(browser !== undefined && demo !== undefined);
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);

    await page.goto(demo.url);
    const anonymousId = await sessionId(page);
    assert.match(anonymousId, /^[0-9a-f]{32}$/);
    // A first visit that stores nothing gets no cookie and leaves no file.
    assert.deepEqual(await context.cookies(), []);
    assert.equal(await page.locator('#not-stored').count(), 1);
    assert.deepEqual(await readdir(join(savePath, 'sessions')).catch(() => []), []);
    assert.equal(await page.locator('#metric-created').textContent(), '0');

    await page.fill('#name', 'Ada <script>');
    await page.click('#login-form button');
    await page.waitForSelector('#user');
    assert.equal(await page.locator('#user strong').textContent(), 'Ada <script>');
    assert.match((await page.locator('#flash').textContent()) ?? '', /Welcome, Ada <script>!/);
    assert.match((await page.locator('#tempdata').textContent()) ?? '', /disappears in \d+ s/);
    const loggedInId = await sessionId(page);
    assert.notEqual(loggedInId, anonymousId, 'login regenerates the session ID');
    assert.equal((await context.cookies()).length, 1, 'logging in stored the session');
    assert.equal(await page.locator('#metric-created').textContent(), '1');
    assert.equal(
      (await readdir(join(savePath, 'sessions'))).some((name) => name.endsWith(anonymousId)),
      false,
      'regenerate(true) deleted the pre-login session file',
    );

    await page.reload();
    assert.equal(await page.locator('#flash').count(), 0, 'flashdata is gone after a reload');
    assert.equal(await page.locator('#tempdata').count(), 1, 'tempdata outlives the flash');

    await page.fill('#note', 'remember the milk');
    await page.click('#save-note');
    await page.waitForSelector('#flash');
    assert.match((await page.locator('#flash').textContent()) ?? '', /^Saved!/);
    await page.reload();
    assert.equal(await page.locator('#flash').count(), 0);
    assert.equal(await page.locator('#note').inputValue(), 'remember the milk');

    const before = Number(await page.locator('#count').textContent());
    await page.click('#increment-20');
    await page.waitForSelector('#increment-result[data-done="1"]');
    assert.equal(Number(await page.locator('#count').textContent()), before + 20);
    assert.match((await page.locator('#increment-result').textContent()) ?? '', /none lost/);
    await page.reload();
    assert.equal(Number(await page.locator('#count').textContent()), before + 20);
    assert.equal(await sessionId(page), loggedInId);

    await page.click('#logout');
    await page.waitForSelector('#login-form');
    const freshId = await sessionId(page);
    assert.match(freshId, /^[0-9a-f]{32}$/);
    assert.notEqual(freshId, loggedInId, 'a fresh session after logout');
    assert.equal(await page.locator('#count').textContent(), '0');
    assert.equal(await page.locator('#note').inputValue(), '');
    assert.equal(await page.locator('#metric-destroyed').textContent(), '1');
    assert.ok(Number(await page.locator('#metric-lock-waits').textContent()) >= 20);
    await context.close();
  });
});
