// The request flow without its transports: an orchestrator built as serving builds it (real lanes
// with the stand-in models, L1 only), called directly. The HTTP and WebSocket tests cover the same
// flow through sockets; these pin what only the orchestrator decides — order, params, cache and
// bypass, dims, usage and streaming — where a failure points at one file.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { RequestCancelledError } from '../../cache/index.js';
import { TwinlaneError } from '../../src/errors.js';
import { CancelSource } from '../../src/cancel.js';
import type { Orchestrator } from '../../src/orchestrator.js';
import { createParts, resolveModels, type Parts } from '../../src/serve.js';
import { scenePng } from '../fixtures/images.js';

const MODELS_DIR = path.resolve(process.env.TWINLANE_MODELS_DIR ?? '../shared/models');
const MINILM = 'twinlane/minilm-l6-standin';
const CLIP = 'twinlane/clip-standin';

let parts: Parts;
let orchestrator: Orchestrator;

beforeAll(async () => {
  const config = loadConfig([], {
    TWINLANE_MODELS_DIR: MODELS_DIR,
    TWINLANE_OFFLINE: 'true',
    TWINLANE_TEXT_MODEL: `${MINILM},${CLIP}`,
    TWINLANE_IMAGE_MODEL: CLIP,
    TWINLANE_TEXT_THREADS: '1',
    TWINLANE_IMAGE_THREADS: '1',
    TWINLANE_MAX_INPUTS: '8',
  });
  parts = createParts(config, await resolveModels(config));
  orchestrator = parts.orchestrator;
  await Promise.all([parts.textLane.warmup(), parts.imageLane?.warmup()]);
}, 120_000);

afterAll(async () => {
  await orchestrator?.close();
});

const text = (inputs: string[], extra: Partial<Parameters<Orchestrator['embedText']>[0]> = {}) =>
  orchestrator.embedText({ inputs, normalize: true, truncate: true, param: 'input', ...extra });

async function refusal(promise: Promise<unknown>): Promise<TwinlaneError> {
  const error: unknown = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TwinlaneError);
  return error as TwinlaneError;
}

/** Items the text lane's models computed so far, as /metrics reports them. */
async function computedItems(): Promise<number> {
  const { body } = await parts.metrics.render();
  return body
    .split('\n')
    .filter((line) => line.startsWith('twinlane_model_items_computed_total{') && line.includes('lane="text"'))
    .reduce((n, line) => n + Number(line.split(' ').at(-1)), 0);
}

const norm = (v: Float32Array): number => Math.hypot(...v);
const unique = (label: string): string => `${label} ${process.hrtime.bigint()} ${Math.random()}`;

describe('orchestrator: texts', () => {
  it('computes, then answers the same texts from L1 with the same vectors', async () => {
    const inputs = [unique('a red circle'), unique('a blue square')];
    const first = await text(inputs);
    expect(first).toMatchObject({ model: MINILM, lane: 'text', dims: 384, cacheHits: 0, hotKeys: null });
    expect(first.vectors.map((v) => v.length)).toEqual([384, 384]);
    first.vectors.forEach((v) => expect(norm(v)).toBeCloseTo(1, 5));
    expect(first.inferenceMs).toBeGreaterThan(0);

    const again = await text(inputs);
    expect(again.cacheHits).toBe(2);
    expect(again.hotKeys).toHaveLength(2);
    expect(again.inferenceMs).toBe(0);
    // BF16 is the Redis tier's format; L1 keeps float32, so a hit is the computed vector itself.
    again.vectors.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(first.vectors[i]!)));
  });

  it('keeps the order of duplicates and of a partly cached request', async () => {
    const [a, b] = [unique('first'), unique('second')];
    const cached = await text([a]);
    const mixed = await text([b, a, b]);
    expect(mixed.cacheHits).toBe(1);
    expect(Array.from(mixed.vectors[1]!)).toEqual(Array.from(cached.vectors[0]!));
    expect(Array.from(mixed.vectors[0]!)).toEqual(Array.from(mixed.vectors[2]!));
    expect(Array.from(mixed.vectors[0]!)).not.toEqual(Array.from(mixed.vectors[1]!));
  });

  it('names the bad item, and refuses before anything is computed', async () => {
    const empty = await refusal(text(['fine', '']));
    expect([empty.code, empty.param]).toEqual(['empty_input', 'input[1]']);
    const many = await refusal(text(Array.from({ length: 9 }, (_, i) => `t${i}`)));
    expect(many.code).toBe('too_many_inputs');
    const unknown = await refusal(text(['x'], { model: 'nobody/none' }));
    expect(unknown.code).toBe('model_not_found');
  });

  it('truncates vectors to `dimensions` and normalises them again; refuses dimensions beyond the model', async () => {
    const input = unique('matryoshka');
    const full = await text([input]);
    const cut = await text([input], { dimensions: 64 });
    expect(cut.dims).toBe(64);
    expect(cut.cacheHits).toBe(1);
    expect(norm(cut.vectors[0]!)).toBeCloseTo(1, 5);
    const prefix = full.vectors[0]!.subarray(0, 64);
    const scale = norm(prefix);
    cut.vectors[0]!.forEach((x, i) => expect(x).toBeCloseTo(prefix[i]! / scale, 6));
    const over = await refusal(text([input], { dimensions: 385 }));
    expect(over.code).toBe('invalid_dimensions');
  });

  it('counts usage with the model tokenizer, special tokens included', async () => {
    const inputs = [unique('count my tokens'), 'short'];
    const result = await text(inputs, { needsUsage: true });
    const tokenized = await orchestrator.tokenize({
      inputs,
      addSpecialTokens: true,
      offsets: 'utf16',
      param: 'input',
    });
    expect(result.promptTokens).toBe(tokenized.inputs.reduce((n, t) => n + t.ids.length, 0));
  });

  it('with truncate:false, refuses a text over max tokens and keeps texts that might be from the cache', async () => {
    const long = Array.from({ length: 300 }, (_, i) => `w${i}`).join(' ');
    const tooLong = await refusal(text([long], { truncate: false }));
    expect([tooLong.code, tooLong.param]).toEqual(['input_too_long', 'input[0]']);

    // 300 characters the bound cannot rule out, but one [UNK]-sized word: computed around the cache
    // every time, since a cached vector could have come from a truncated text.
    const maybe = 'a'.repeat(300);
    await text([maybe], { truncate: false });
    const bypassed = await text([maybe], { truncate: false });
    expect(bypassed.cacheHits).toBe(0);
    expect(bypassed.inferenceMs).toBeGreaterThan(0);

    const short = unique('short enough');
    await text([short], { truncate: false });
    expect((await text([short], { truncate: false })).cacheHits).toBe(1);
  });

  it('fails a request whose deadline has passed, and one whose client went away, without computing it', async () => {
    const before = await computedItems();
    expect(before).toBeGreaterThan(0);
    const late = await refusal(
      text([unique('too late')], { policy: { priority: 'normal', startedAt: 0, timeoutMs: 1 } }),
    );
    expect(late.code).toBe('deadline_exceeded');
    const gone = new CancelSource();
    gone.cancel();
    const error: unknown = await text([unique('nobody waits')], { cancellation: gone }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestCancelledError);
    expect(await computedItems()).toBe(before);
  });
});

describe('orchestrator: models with two towers', () => {
  it('answers a mixed list in the client order, each item as its own lane computes it', async () => {
    const [circle, square] = await Promise.all([scenePng('circle'), scenePng('square')]);
    const words = [unique('a red circle'), unique('a green square')];
    const mixed = await orchestrator.embedInputs({
      model: CLIP,
      inputs: [{ text: words[0]! }, { image: { bytes: circle } }, { text: words[1]! }, { image: { bytes: square } }],
      normalize: true,
      truncate: true,
      param: 'input',
    });
    expect(mixed).toMatchObject({ model: CLIP, dims: 512 });
    const texts = await text(words, { model: CLIP });
    const images = await orchestrator.embedImages({
      model: CLIP,
      inputs: [{ bytes: circle }, { bytes: square }],
      normalize: true,
      param: 'input',
    });
    expect(texts.cacheHits).toBe(2);
    const same = (a: Float32Array, b: Float32Array) => expect(Array.from(a)).toEqual(Array.from(b));
    same(mixed.vectors[0]!, texts.vectors[0]!);
    same(mixed.vectors[2]!, texts.vectors[1]!);
    same(mixed.vectors[1]!, images.vectors[0]!);
    same(mixed.vectors[3]!, images.vectors[1]!);
  });

  it("reports a bad item of a mixed list at its place in the client's list", async () => {
    const circle = await scenePng('circle');
    const empty = await refusal(
      orchestrator.embedInputs({
        model: CLIP,
        inputs: [{ image: { bytes: circle } }, { text: 'fine' }, { text: '' }],
        normalize: true,
        truncate: true,
        param: 'input',
      }),
    );
    expect([empty.code, empty.param]).toEqual(['empty_input', 'input[2]']);
    const noTower = await refusal(
      orchestrator.embedInputs({
        model: MINILM,
        inputs: [{ text: 'fine' }, { image: { bytes: circle } }],
        normalize: true,
        truncate: true,
        param: 'input',
      }),
    );
    expect([noTower.code, noTower.param]).toEqual(['invalid_request', 'input[1]']);
  });

  it('keeps each model in its own key space and its own dims', async () => {
    const input = unique('one text, two models');
    const minilm = await text([input]);
    const clip = await text([input], { model: CLIP });
    expect([minilm.dims, clip.dims, clip.cacheHits]).toEqual([384, 512, 0]);
  });
});

describe('orchestrator: streams', () => {
  it('reports cached items first, refuses bad ones by index, and computes the rest', async () => {
    const cachedText = unique('already here');
    await text([cachedText]);
    const events: string[] = [];
    const vectors = new Map<number, Float32Array>();
    const stream = orchestrator.streamText(
      { inputs: [unique('new'), '', cachedText], normalize: true, truncate: true, param: 'inputs' },
      {
        vector: (index, vector, cached) => (
          events.push(`${index}:${cached ? 'cached' : 'computed'}`),
          vectors.set(index, vector)
        ),
        error: (index, error) => events.push(`${index}:${error.code}`),
      },
    );
    const toCompute = await stream.answerCached();
    expect(toCompute).toEqual([0]);
    expect(events.sort()).toEqual(['1:empty_input', '2:cached']);
    await stream.compute(toCompute, new CancelSource());
    expect(events).toContain('0:computed');
    expect(vectors.get(0)).toHaveLength(384);
  });
});
