// Who may ask, and how much: API keys on the routes that need them, and the per-client item budget
// on the embedding routes. Authentication runs before anything else (before the body is read);
// spending runs once the body says how many items the request carries, before any of them is
// looked up or computed. Answers of rate-limited routes always carry the client's budget headers.
import { TwinlaneError, type ApiKeys, type Metrics, type RateDecision, type RateLimiter } from '../src/index.js';
import type { Exchange } from './exchange.js';

/** open: never needs a key; ops: health, readiness and metrics (keys only if configured so); api: needs a key when keys are set. */
export type Access = 'open' | 'ops' | 'api';

export interface GuardOptions {
  readonly apiKeys: ApiKeys | null;
  readonly limiter: RateLimiter | null;
  /** Require keys on the ops routes too. */
  readonly authOps: boolean;
  readonly metrics: Metrics;
}

function rateHeaders(decision: RateDecision): Record<string, string> {
  return {
    'x-ratelimit-limit': String(decision.limit),
    'x-ratelimit-remaining': String(decision.remaining),
    'x-ratelimit-reset': String(decision.resetSeconds),
  };
}

export class Guard {
  readonly #options: GuardOptions;

  constructor(options: GuardOptions) {
    this.#options = options;
  }

  get rateLimited(): boolean {
    return this.#options.limiter !== null;
  }

  /**
   * Throws 401 unless the request may use the route; remembers the key's client id. The key comes
   * from `Authorization`, or from `authorization` when the transport carries it elsewhere (a browser's
   * WebSocket offers it as a subprotocol).
   */
  authenticate(ex: Exchange, access: Access, authorization = ex.header('authorization')): void {
    const { apiKeys, authOps, metrics } = this.#options;
    if (!apiKeys || access === 'open' || (access === 'ops' && !authOps)) return;
    ex.client = apiKeys.verify(authorization, (reason) => metrics.authFailure(reason));
  }

  /** Takes `items` from `client`'s budget (a WebSocket request); null when no rate limit is configured. */
  decide(client: string, items: number): Promise<RateDecision> | null {
    return this.#options.limiter?.spend(client, Math.max(1, items)) ?? null;
  }

  /** Takes `items` from the client's budget, or throws 429 `rate_limited` with Retry-After. */
  async spend(ex: Exchange, items: number): Promise<void> {
    const { limiter } = this.#options;
    // Once per request: a hot answer that turns out stale after charging sends the request on through
    // the whole flow, which must not charge it again.
    if (!limiter || ex.charged) return;
    ex.charged = true;
    const decision = await limiter.spend(this.clientOf(ex), Math.max(1, items));
    ex.setHeaders(rateHeaders(decision));
    if (!decision.allowed) {
      throw new TwinlaneError(
        'rate_limited',
        `This client's budget of ${decision.limit} items (refilling at the configured rate) cannot cover ${items} item(s) now; retry after ${decision.retryAfterSeconds} s.`,
        { retryAfterSeconds: decision.retryAfterSeconds },
      );
    }
  }

  /** For answers that spent nothing (refused before the body was read): the budget as known here. */
  reportBudget(ex: Exchange): void {
    const { limiter } = this.#options;
    if (!limiter || ex.hasHeaders) return;
    ex.setHeaders(rateHeaders(limiter.peek(this.clientOf(ex))));
  }

  /** The API key's id when keys are configured (and so verified), else the client's address. */
  clientOf(ex: Exchange): string {
    return ex.client ?? `ip:${ex.remoteAddress}`;
  }
}
