/** Milliseconds since the epoch; every session time decision goes through one. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

export function nowSeconds(clock: Clock): number {
  return Math.floor(clock() / 1000);
}

/** A clock that only moves when told to; for tests of expiry and regeneration. */
export class FakeClock {
  #nowMs: number;

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.#nowMs = startMs;
  }

  readonly now: Clock = () => this.#nowMs;

  advance(seconds: number): void {
    this.#nowMs += seconds * 1000;
  }

  set(ms: number): void {
    this.#nowMs = ms;
  }
}
