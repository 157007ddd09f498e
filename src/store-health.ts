import { publish } from './diagnostics.js';
import type { SessionLogger } from './log.js';

/** One summary line per this long while a store keeps failing. */
const SUMMARY_INTERVAL_MS = 10_000;

/**
 * What an operator sees of a store's outages: the first failure logged at once, with its cause;
 * then one summary line per interval with the count, so an outage does not flood the log; and one
 * line when the store answers again. The failure answered to the client (a 503) names none of it.
 */
export class StoreHealth {
  readonly #driver: string;
  readonly #logger: SessionLogger;
  #failingSince = 0;
  #failures = 0;
  #unreported = 0;
  #latest = '';
  #summary: NodeJS.Timeout | undefined;

  constructor(driver: string, logger: SessionLogger) {
    this.#driver = driver;
    this.#logger = logger;
  }

  get failing(): boolean {
    return this.#failures > 0;
  }

  /** A store call failed and its request gets a 503. */
  failed(operation: string, cause: unknown): void {
    publish.storeError(this.#driver, operation, cause);
    this.#failures += 1;
    this.#latest = `${operation}: ${describe(cause)}`;
    if (this.#failures === 1) {
      this.#failingSince = performance.now();
      this.#logger.error(
        `keepsake: the "${this.#driver}" session store failed during ${operation}; requests on sessions answer 503 until it is back`,
        cause,
      );
      this.#summary = setInterval(() => this.#summarize(), SUMMARY_INTERVAL_MS);
      this.#summary.unref();
      return;
    }
    this.#unreported += 1;
  }

  /** A store call succeeded: after failures, the store is back. */
  succeeded(): void {
    if (this.#failures === 0) return;
    const downMs = performance.now() - this.#failingSince;
    clearInterval(this.#summary);
    this.#logger.warn(
      `keepsake: the "${this.#driver}" session store answers again after ${(downMs / 1000).toFixed(1)} s and ${this.#failures} failed call${this.#failures === 1 ? '' : 's'}.`,
    );
    publish.storeRecovered(this.#driver, this.#failures, downMs);
    this.#failures = 0;
    this.#unreported = 0;
  }

  #summarize(): void {
    if (this.#unreported === 0) return;
    this.#logger.error(
      `keepsake: the "${this.#driver}" session store is still failing: ${this.#unreported} more failed call${this.#unreported === 1 ? '' : 's'} in the last ${SUMMARY_INTERVAL_MS / 1000} s (latest, ${this.#latest})`,
    );
    this.#unreported = 0;
  }
}

function describe(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
