import type { SessionKey } from '../../../src/drivers/contract.js';

/** The sessions the write-loop child rewrites (fixed IDs, so the parent knows where to look). */
export function writeLoopKeys(): SessionKey[] {
  return Array.from({ length: 8 }, (_, index) => ({
    id: index.toString(16).padStart(2, '0').repeat(16),
    ip: null,
  }));
}

const PAYLOAD_BYTES = 512 * 1024;

/** Generation `generation` of session `index`: large, and self-describing so a mix is detectable. */
export function payloadFor(index: number, generation: number): string {
  const fill = String.fromCharCode(97 + (generation % 26));
  return JSON.stringify({ index, generation, fill: fill.repeat(PAYLOAD_BYTES) });
}

/** True when `text` is exactly some generation's payload of session `index`. */
export function isWholePayload(text: string, index: number): boolean {
  try {
    const parsed = JSON.parse(text) as { index?: unknown; generation?: unknown };
    return (
      parsed.index === index &&
      typeof parsed.generation === 'number' &&
      text === payloadFor(index, parsed.generation)
    );
  } catch {
    return false;
  }
}
