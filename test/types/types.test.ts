/**
 * Typed session data, checked by the compiler: .fixtures/pass.ts must compile, and .fixtures/fail.ts
 * must fail on exactly the lines marked `// error`. The fixtures live in a dot-folder so that
 * tsconfig.check.json (whose globs skip dot-folders) never sees their SessionDataMap declaration.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const here = fileURLToPath(new URL('./', import.meta.url));
const tsc = `${root}node_modules/typescript/bin/tsc`;

interface Compilation {
  exitCode: number;
  output: string;
}

function compile(project: string): Promise<Compilation> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [tsc, '--noEmit', '--pretty', 'false', '-p', `${here}${project}`],
      { cwd: root, timeout: 50_000 },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number') {
          reject(error);
          return;
        }
        resolve({ exitCode: error === null ? 0 : Number(error.code), output: stdout + stderr });
      },
    );
  });
}

/** Line numbers (1-based) of the diagnostics reported for `file`. */
function errorLines(output: string, file: string): number[] {
  const pattern = new RegExp(`${file.replace(/\./g, '\\.')}\\((\\d+),\\d+\\): error TS\\d+`, 'g');
  return [...new Set([...output.matchAll(pattern)].map((match) => Number(match[1])))].sort(
    (left, right) => left - right,
  );
}

const missingExport =
  'src/index.ts must export the SessionDataMap and AppSessionData types (from ./session.js) for ' +
  "`declare module 'keepsake'` to type the session";

describe('typed session data', { concurrency: true }, () => {
  it('the pass fixture compiles: declared keys are typed in every adapter', async () => {
    const { exitCode, output } = await compile('tsconfig.pass.json');
    if (/has no exported member named '(AppSessionData|SessionDataMap)'/.test(output)) {
      assert.fail(`${missingExport}\n${output}`);
    }
    assert.equal(exitCode, 0, output);
  });

  it('the fail fixture fails on every marked line and nowhere else', async () => {
    const source = await readFile(`${here}.fixtures/fail.ts`, 'utf8');
    const marked = source
      .split('\n')
      .flatMap((line, index) => (line.trimEnd().endsWith('// error') ? [index + 1] : []));
    assert.ok(marked.length >= 10, 'the fail fixture marks its expected errors');
    const { exitCode, output } = await compile('tsconfig.fail.json');
    assert.notEqual(exitCode, 0, 'the fail fixture compiled');
    assert.deepEqual(
      errorLines(output, '.fixtures/fail.ts'),
      marked,
      `${missingExport}?\n${output}`,
    );
    assert.equal(errorLines(output, '.fixtures/session-data.ts').length, 0, output);
  });
});
