// Counts tokens on the main thread for the one case the workers cannot: a vector served by a cache
// tier that does not keep token counts (Redis values are bare BF16), when a client needs OpenAI's
// `usage`. Loaded on first use, so servers that never need it never pay for it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

export interface TokenCounter {
  /** Tokens the text lane would feed the model for `text`: special tokens included, cut at max tokens. */
  count(text: string): number;
}

export function createTokenCounter(modelDir: string, maxTokens: number): TokenCounter {
  let tokenizer: Tokenizer | null = null;
  const load = (): Tokenizer => {
    const read = (file: string) => JSON.parse(readFileSync(path.join(modelDir, file), 'utf8')) as object;
    tokenizer = new Tokenizer(read('tokenizer.json'), read('tokenizer_config.json'));
    return tokenizer;
  };
  return {
    count: (text) => Math.min((tokenizer ?? load()).encode(text).ids.length, maxTokens),
  };
}
