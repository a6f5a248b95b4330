// OpenAI's `usage`: the tokens a request's texts counted. Workers report each computed text's count,
// and L1 keeps it; a vector from Redis (bare BF16) has none, so when a client needs usage that text is
// counted on the main thread, by its model's own tokenizer, and the fallback is counted in metrics.
import { createTokenCounter, type TokenCounter } from '../lanes/index.js';
import type { Metrics } from './metrics.js';
import type { TextTower } from './registry.js';

export class Usage {
  readonly #metrics: Metrics;
  /** Per text tower, made on first need: a server whose Redis never answers a usage request never loads one. */
  readonly #counters = new Map<number, TokenCounter>();

  constructor(metrics: Metrics) {
    this.#metrics = metrics;
  }

  /** Tokens over all of `texts`; with `needsUsage` false, texts without a known count add nothing. */
  promptTokens(
    tower: TextTower,
    texts: readonly string[],
    answers: readonly { readonly tokens: number | null }[],
    needsUsage: boolean,
  ): number {
    let tokens = 0;
    let counted = 0;
    answers.forEach((answer, i) => {
      if (answer.tokens !== null) tokens += answer.tokens;
      else if (needsUsage) {
        tokens += this.#counter(tower).count(texts[i]!);
        counted++;
      }
    });
    if (counted > 0) this.#metrics.fallback('tokens_counted_on_main_thread', counted);
    return tokens;
  }

  #counter(tower: TextTower): TokenCounter {
    let counter = this.#counters.get(tower.slot);
    if (!counter) {
      counter = createTokenCounter(tower.dir, tower.maxTokens);
      this.#counters.set(tower.slot, counter);
    }
    return counter;
  }
}
