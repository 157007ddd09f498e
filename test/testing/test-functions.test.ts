/**
 * The conformance suite registers its cases with whatever `{ describe, it }` it is given (vitest's,
 * jest's): here a minimal runner of our own collects them, and runs them outside node:test.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { array } from '../../src/drivers/array.js';
import { runConformanceSuite, type TestFunctions } from '../../src/testing/conformance.js';

/** Collects cases as vitest and jest do: describe runs its body at once, it records the case. */
function collectingRunner(): TestFunctions & {
  cases: { name: string; body: () => Promise<void> }[];
} {
  const path: string[] = [];
  const cases: { name: string; body: () => Promise<void> }[] = [];
  return {
    cases,
    describe(name, body) {
      path.push(name);
      body();
      path.pop();
    },
    it(name, body) {
      cases.push({ name: [...path, name].join(' › '), body });
    },
  };
}

describe('the conformance suite under another test runner', () => {
  it('registers every case with the given functions, and each passes when run by that runner', async () => {
    const runner = collectingRunner();
    runConformanceSuite('array (collected)', { driver: () => array(), expiry: 'clock' }, runner);
    assert.ok(runner.cases.length >= 30, `${runner.cases.length} cases were registered`);
    assert.ok(
      runner.cases.every((entry) =>
        entry.name.startsWith('array (collected): driver conformance › '),
      ),
    );
    const failures: string[] = [];
    for (const entry of runner.cases) {
      await entry
        .body()
        .catch((error: unknown) => failures.push(`${entry.name}: ${String(error)}`));
    }
    assert.deepEqual(failures, []);
  });
});
