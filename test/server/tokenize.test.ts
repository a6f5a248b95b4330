// POST /tokenize (issue 13): the ids the embedding path feeds the model (the workers' tokenizer,
// @huggingface/tokenizers), with and without special tokens, their count equal to the usage the
// embedding reports, and offsets that slice the input to each token, in all three units.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIP, MINILM } from '../helpers/models.js';
import { MODELS_DIR, startServer, type TestServer } from '../helpers/server.js';

const TEXTS = [
  'A man is playing a guitar.',
  'Hello, World! Tokenizers split "punctuation" and numbers like 12345.',
  'naïve café, Ünïcode, 日本語 and emoji 👍🏽 in one line',
  'İstanbul ﬁne ẞ',
  '  leading and   repeated   spaces ',
  'unaffable tokenization',
];

interface Tokenized {
  index: number;
  count: number;
  ids: number[];
  tokens: string[];
  special: boolean[];
  offsets: [number, number][];
}

function load(id: string): Tokenizer {
  const read = (file: string) => JSON.parse(readFileSync(path.join(MODELS_DIR, id, file), 'utf8')) as object;
  return new Tokenizer(read('tokenizer.json'), read('tokenizer_config.json'));
}

async function tokenize(
  url: string,
  body: Record<string, unknown>,
): Promise<{ model: string; max_tokens: number; data: Tokenized[] }> {
  const res = await fetch(`${url}/tokenize`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as { model: string; max_tokens: number; data: Tokenized[] };
}

/** What a WordPiece (uncased) token reads as in the input: lower-cased, accents stripped, without "##". */
const bertForm = (text: string) =>
  text
    .normalize('NFD')
    .replace(/\p{Mn}/gu, '')
    .toLowerCase();

describe('POST /tokenize', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({ TWINLANE_TEXT_MODEL: `${MINILM},${CLIP}`, TWINLANE_IMAGE_MODEL: 'none' });
  });
  afterAll(async () => {
    await server.stop();
  });

  it.each([MINILM, CLIP])(
    'gives %s the ids the embedding path uses, with and without special tokens',
    async (model) => {
      const reference = load(model);
      const withSpecials = await tokenize(server.url, { model, inputs: TEXTS });
      const without = await tokenize(server.url, { model, inputs: TEXTS, add_special_tokens: false });
      expect(withSpecials.model).toBe(model);
      expect(withSpecials.max_tokens).toBe(model === CLIP ? 77 : 256);
      TEXTS.forEach((text, i) => {
        const got = withSpecials.data[i]!;
        expect(got.ids, text).toEqual(reference.encode(text).ids);
        expect(got.count).toBe(got.ids.length);
        expect(got.tokens).toHaveLength(got.ids.length);
        expect(got.special[0]).toBe(true);
        expect(got.special.at(-1)).toBe(true);
        expect(got.special.slice(1, -1).every((s) => !s)).toBe(true);
        expect(without.data[i]!.ids).toEqual(reference.encode(text, { add_special_tokens: false }).ids);
        expect(without.data[i]!.ids).toEqual(got.ids.slice(1, -1));
      });
    },
  );

  it.each([MINILM, CLIP])('counts for %s what the embedding reports as usage', async (model) => {
    const counts = (await tokenize(server.url, { model, inputs: TEXTS })).data.map((d) => d.count);
    for (const [i, text] of TEXTS.entries()) {
      const res = await fetch(`${server.url}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, input: text }),
      });
      expect(((await res.json()) as { usage: { prompt_tokens: number } }).usage.prompt_tokens, text).toBe(counts[i]);
    }
  });

  it('gives offsets that slice the input to each token (WordPiece)', async () => {
    const { data } = await tokenize(server.url, { model: MINILM, inputs: TEXTS });
    data.forEach((d, i) => {
      d.tokens.forEach((token, t) => {
        const [start, end] = d.offsets[t]!;
        if (d.special[t]) return expect([start, end]).toEqual([0, 0]);
        if (token === '[UNK]') return expect(end).toBeGreaterThan(start);
        expect(bertForm(TEXTS[i]!.slice(start, end)), `${TEXTS[i]} token ${t}`).toBe(token.replace(/^##/, ''));
      });
    });
  });

  it('gives offsets that slice the input to each token (CLIP byte-level BPE)', async () => {
    const ascii = TEXTS.filter((t) => !/[^\x20-\x7e]/.test(t));
    const { data } = await tokenize(server.url, { model: CLIP, inputs: ascii });
    data.forEach((d, i) => {
      d.tokens.forEach((token, t) => {
        if (d.special[t]) return;
        const [start, end] = d.offsets[t]!;
        expect(ascii[i]!.slice(start, end).toLowerCase(), `${ascii[i]} token ${t}`).toBe(token.replace(/<\/w>$/, ''));
      });
    });
  });

  it('gives the same spans in UTF-16 units, code points and UTF-8 bytes', async () => {
    const [utf16, points, bytes] = await Promise.all(
      ['utf16', 'codepoint', 'byte'].map((offsets) => tokenize(server.url, { model: CLIP, inputs: TEXTS, offsets })),
    );
    TEXTS.forEach((text, i) => {
      const chars = Array.from(text);
      const utf8 = Buffer.from(text);
      utf16!.data[i]!.offsets.forEach(([start, end], t) => {
        const span = text.slice(start, end);
        const [cs, ce] = points!.data[i]!.offsets[t]!;
        const [bs, be] = bytes!.data[i]!.offsets[t]!;
        expect(chars.slice(cs, ce).join(''), `${text} token ${t}`).toBe(span);
        expect(utf8.subarray(bs, be).toString(), `${text} token ${t}`).toBe(span);
      });
    });
    // Outside ASCII the units differ: "👍🏽" is two code points, four UTF-16 units, eight bytes.
    expect(utf16!.data[2]!.offsets).not.toEqual(points!.data[2]!.offsets);
  });

  it("returns every token of a text over the model's limit, for clients to chunk", async () => {
    const long = 'word '.repeat(300).trim();
    const [minilm, clip] = await Promise.all([
      tokenize(server.url, { model: MINILM, inputs: long }),
      tokenize(server.url, { model: CLIP, inputs: long }),
    ]);
    expect(minilm.data[0]!.count).toBe(302);
    expect(clip.data[0]!.count).toBe(302);
  });
});
