/** The complete driver in docs/drivers/custom.md, exactly as printed, passes the conformance suite. */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { SessionDriver } from '../../src/drivers/contract.js';
import { runConformanceSuite } from '../../src/testing/conformance.js';

const page = await readFile(new URL('../../docs/drivers/custom.md', import.meta.url), 'utf8');
const blocks = [...page.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1] ?? '');
const driverCode = blocks.find((block) => block.includes('export function mapDriver'));
if (driverCode === undefined) throw new Error('docs/drivers/custom.md shows no mapDriver()');

const directory = await mkdtemp(join(tmpdir(), 'keepsake-custom-driver-'));
const file = join(directory, 'map-driver.ts');
await writeFile(file, driverCode);
const { mapDriver } = (await import(pathToFileURL(file).href)) as { mapDriver(): SessionDriver };

runConformanceSuite('the map driver of docs/drivers/custom.md', {
  driver: () => mapDriver(),
  expiry: 'clock',
});
