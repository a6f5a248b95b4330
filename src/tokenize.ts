// POST /tokenize's model side: ids, tokens, special-token flags and character offsets of texts, as a
// text model's own tokenizer makes them, so clients can chunk documents to its limit. The offsets come
// from Hugging Face's Rust tokenizers (npm `tokenizers`): the JavaScript port the workers embed with
// (@huggingface/tokenizers) has none. Its encode runs on libuv's pool, off the main thread, and the
// ids are those of the embedding path (test/server/tokenize.test.ts holds the two to each other).
import { Tokenizer } from 'tokenizers';
import type { TextTower } from './registry.js';

/** utf16: JavaScript string indices (`text.slice`); codepoint: Python `str` indices; byte: UTF-8 byte offsets. */
export type OffsetUnit = 'utf16' | 'codepoint' | 'byte';

export interface Tokenized {
  readonly ids: readonly number[];
  readonly tokens: readonly string[];
  /** true for the special tokens the tokenizer added ([CLS], <|endoftext|>), whose offsets are [0, 0]. */
  readonly special: readonly boolean[];
  /** [start, end) of each token in the input, in the requested unit. */
  readonly offsets: readonly (readonly [number, number])[];
}

/** Code point index → index in `unit`, for a text that is not pure ASCII (where all three agree). */
function unitIndex(text: string, unit: OffsetUnit): number[] {
  const index = [0];
  let at = 0;
  for (const char of text) {
    const code = char.codePointAt(0)!;
    at += unit === 'utf16' ? char.length : code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    index.push(at);
  }
  return index;
}

export class Tokenizers {
  /** Per model directory, loaded on first use: a server nobody asks to tokenize never reads one. */
  readonly #loaded = new Map<string, Tokenizer>();

  #tokenizer(tower: TextTower): Tokenizer {
    let tokenizer = this.#loaded.get(tower.dir);
    if (!tokenizer) {
      tokenizer = Tokenizer.fromFile(`${tower.dir}/tokenizer.json`);
      // tokenizer.json may carry an export's padding and truncation; clients want every token of the text.
      tokenizer.disablePadding();
      tokenizer.disableTruncation();
      this.#loaded.set(tower.dir, tokenizer);
    }
    return tokenizer;
  }

  async tokenize(
    tower: TextTower,
    texts: readonly string[],
    addSpecialTokens: boolean,
    unit: OffsetUnit,
  ): Promise<Tokenized[]> {
    const encodings = await this.#tokenizer(tower).encodeBatch([...texts], { addSpecialTokens });
    return encodings.map((encoding, i) => {
      const text = texts[i]!;
      // eslint-disable-next-line no-control-regex
      const index = unit === 'codepoint' || !/[^\u0000-\u007f]/.test(text) ? null : unitIndex(text, unit);
      return {
        ids: encoding.getIds(),
        tokens: encoding.getTokens(),
        special: encoding.getSpecialTokensMask().map((m) => m === 1),
        offsets: encoding
          .getOffsets()
          .map(([start = 0, end = 0]): readonly [number, number] =>
            index ? [index[start]!, index[end]!] : [start, end],
          ),
      };
    });
  }
}
