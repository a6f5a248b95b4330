// An upper bound of the tokens a text makes, known without tokenising it: what the batcher costs a
// text by (tokenising happens in the workers) and what decides whether a truncate:false text could be
// over its model's limit (and so must skip the cache, whose keys cannot say a vector was truncated).

/**
 * utf16: WordPiece (BERT), at most one token per UTF-16 unit; utf8: byte-level BPE (CLIP) and other
 * tokenizers with byte fallback, at most one token per UTF-8 byte of the normalised text.
 */
export type TokenBound = 'utf16' | 'utf8';

/** Special tokens a single-sentence encoding adds ([CLS] … [SEP], <|startoftext|> … <|endoftext|>). */
const SPECIALS = 2;

/**
 * Normalisation (NFC, lower-casing) can lengthen a non-ASCII text: 'İ' lower-cases to two code points,
 * and NFC expands a code point to at most three. Four UTF-8 bytes per code point, three code points
 * per UTF-16 unit: 12 bytes per unit bounds every case; ASCII is left as it is, byte for byte.
 */
const WORST_BYTES_PER_UNIT = 12;

export function tokenUpperBound(bound: TokenBound, text: string): number {
  if (bound === 'utf16') return text.length + SPECIALS;
  // eslint-disable-next-line no-control-regex
  const ascii = !/[^\u0000-\u007f]/.test(text);
  return (ascii ? text.length : text.length * WORST_BYTES_PER_UNIT) + SPECIALS;
}
