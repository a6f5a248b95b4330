// `npm run bench:hit-path`: tinybench micro-benchmarks of each stage of a cache hit's main-thread
// work, each beside its naive baseline, written to bench/results/hit-path.md. The stages are those of
// a POST /v1/embeddings for one cached text: identity (request id), parse, key, lookup, encode, and
// the bookkeeping of the answer (metrics). The socket writes themselves (uWebSockets.js's cork,
// status, headers, end) cannot be timed apart from a socket; bench:e2e's (c) against (d) covers them.
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import client from 'prom-client';
import { Bench } from 'tinybench';
import { createCache, textKey, type ComputeMisses } from '../../cache/index.js';
import { parseJson } from '../../server/body.js';
import { optionalEnum, optionalString, requireObject, textInputs } from '../../server/fields.js';
import { headerLines } from '../../server/wire.js';
import { HotAnswers } from '../../server/hot-answers.js';
import { float32Bytes, jsonVector } from '../../server/reply.js';
import { Tally, TallyHistogram } from '../../src/tally.js';
import { ROOT } from '../lib/children.js';

const DIMS = 384;
const TEXT = 'The young doctor quietly repaired a red bicycle near the train station this morning.';
const MODEL = 'twinlane/minilm-l6-standin';
const BODY = Buffer.from(JSON.stringify({ model: MODEL, input: TEXT, encoding_format: 'base64' }));

interface Row {
  readonly stage: string;
  readonly name: string;
  readonly ns: number;
}

function vector(): Float32Array {
  const v = new Float32Array(DIMS);
  let sum = 0;
  for (let i = 0; i < DIMS; i++) sum += (v[i] = Math.sin(i * 12.9898) * 0.7) ** 2;
  for (let i = 0; i < DIMS; i++) v[i]! /= Math.sqrt(sum);
  return v;
}

async function main(): Promise<void> {
  const v = vector();
  const key = textKey('twinlane', MODEL, true, TEXT);
  const cache = createCache({ l1Bytes: 1 << 20 });
  const never: ComputeMisses = () => {
    throw new Error('an L1 hit reached compute');
  };
  const seeded: ComputeMisses = (indices) =>
    indices.map(() => Promise.resolve({ ok: true, value: { vector: v, tokens: 19 } }));
  await Promise.all(cache.resolve([key], seeded));
  const hot = new HotAnswers(1 << 20);
  const hotKey = hot.key('/v1/embeddings', 'openai', BODY)!;
  hot.set(hotKey, {
    lane: 'text',
    cacheKeys: [key],
    lines: headerLines({ 'content-type': 'application/json', 'x-cache-hits': '1' })!,
    body: Buffer.from('kept'),
  });
  const registry = new client.Registry();
  const counter = new client.Counter({
    name: 'naive_items_total',
    help: 'h',
    labelNames: ['lane', 'result'],
    registers: [registry],
  });
  const tally = new Tally({
    name: 'tally_items_total',
    help: 'h',
    labelNames: ['lane', 'result'],
    registers: [registry],
  });
  // The request-duration histogram's buckets (src/metrics.ts); values spread over them as answers' times are.
  const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  const histogram = new client.Histogram({
    name: 'naive_duration_seconds',
    help: 'h',
    labelNames: ['route', 'lane'],
    buckets,
    registers: [registry],
  }).labels({ route: '/v1/embeddings', lane: 'text' });
  const tallyHistogram = new TallyHistogram({
    name: 'tally_duration_seconds',
    help: 'h',
    labelNames: ['route', 'lane'],
    buckets,
    registers: [registry],
  });
  const seconds = Array.from({ length: 64 }, (_, i) => 0.0002 * 1.1 ** i);
  let observed = 0;
  let idCounter = 0;
  const idPrefix = randomUUID().slice(0, 24);
  let sink = 0;

  const stages: [string, string, () => void | Promise<void>][] = [
    ['identity', 'naive: crypto.randomUUID()', () => void (sink += randomUUID().length)],
    [
      'identity',
      'twinlane: random prefix + counter (server/exchange.ts)',
      () => void (sink += `${idPrefix}${(++idCounter).toString(16).padStart(12, '0')}`.length),
    ],
    [
      'parse',
      'naive: JSON.parse(body.toString()) + fields',
      () => {
        const body = JSON.parse(BODY.toString()) as Record<string, unknown>;
        sink += (body['input'] as string).length;
      },
    ],
    [
      'parse',
      'twinlane: strict UTF-8 + JSON.parse + typed fields (whole flow)',
      () => {
        const body = requireObject(parseJson(BODY));
        sink +=
          textInputs(body, 'input').length +
          (optionalString(body, 'model')?.length ?? 0) +
          optionalEnum(body, 'encoding_format', ['float', 'base64'], 'float').length;
      },
    ],
    [
      'parse',
      'twinlane: hot-answer key and lookup (repeated request: no parse)',
      () => void (sink += hot.get(hot.key('/v1/embeddings', 'openai', BODY)!) ? 1 : 0),
    ],
    [
      'key',
      'naive: createHash().update().digest()',
      () => void (sink += `twinlane:${MODEL}:n1:${createHash('sha256').update(TEXT).digest('hex')}`.length),
    ],
    [
      'key',
      'twinlane: crypto.hash one-shot (cache/keys.ts)',
      () => void (sink += textKey('twinlane', MODEL, true, TEXT).length),
    ],
    [
      'lookup',
      'naive: await Promise.all(cache.resolve(keys))',
      async () => {
        const [hit] = await Promise.all(cache.resolve([key], never));
        sink += hit!.vector.length;
      },
    ],
    ['lookup', 'twinlane: cache.touch(keys) for a hot answer', () => void (sink += cache.touch([key]) ? 1 : 0)],
    [
      'encode',
      'naive: JSON.stringify of the OpenAI answer, base64',
      () => {
        const embedding = Buffer.from(v.buffer, v.byteOffset, DIMS * 4).toString('base64');
        sink += JSON.stringify({
          object: 'list',
          data: [{ object: 'embedding', index: 0, embedding }],
          model: MODEL,
          usage: { prompt_tokens: 19, total_tokens: 19 },
        }).length;
      },
    ],
    [
      'encode',
      'twinlane: base64 answer written by hand (routes/embeddings.ts)',
      () => {
        const embedding = `"${float32Bytes([v], DIMS).toString('base64')}"`;
        sink +=
          `{"object":"list","data":[{"object":"embedding","index":0,"embedding":${embedding}}],"model":${JSON.stringify(MODEL)},"usage":{"prompt_tokens":19,"total_tokens":19}}`
            .length;
      },
    ],
    [
      'encode',
      'naive: JSON.stringify(Array.from(vector)) (float answers)',
      () => void (sink += JSON.stringify(Array.from(v)).length),
    ],
    ['encode', 'twinlane: jsonVector, Float32Array#join (server/reply.ts)', () => void (sink += jsonVector(v).length)],
    ['metrics', 'naive: prom-client counter.inc({labels}, n)', () => counter.inc({ lane: 'text', result: 'l1' }, 1)],
    [
      'metrics',
      'twinlane: Tally.add (folded in at scrape, src/tally.ts)',
      () => tally.add('text', 'l1', '', () => ({ lane: 'text', result: 'l1' }), 1),
    ],
    ['metrics', 'naive: prom-client histogram child.observe(s)', () => histogram.observe(seconds[++observed & 63]!)],
    [
      'metrics',
      'twinlane: TallyHistogram.observe (src/tally.ts)',
      () =>
        tallyHistogram.observe(
          '/v1/embeddings',
          'text',
          '',
          () => ({ route: '/v1/embeddings', lane: 'text' }),
          seconds[++observed & 63]!,
        ),
    ],
  ];
  const bench = new Bench({ name: 'hit path', time: 600, warmupTime: 150 });
  for (const [stage, name, fn] of stages) bench.add(`${stage} · ${name}`, fn);
  await bench.run();
  const rows: Row[] = bench.tasks.map((task, i) => {
    const result = task.result as { latency?: { mean?: number } } | undefined;
    return { stage: stages[i]![0], name: stages[i]![1], ns: (result?.latency?.mean ?? Number.NaN) * 1e6 };
  });
  if (sink === 0) throw new Error('the benchmark bodies did nothing');
  await cache.close();

  const md = [
    '# Cache-hit path, stage by stage',
    '',
    `Written by \`npm run bench:hit-path\` (bench/micro/hit-path.bench.ts) on ${new Date().toISOString()}: tinybench, 600 ms per task after 150 ms of warm-up, one thread.`,
    '',
    `- Machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.availableParallelism()} cores; Node ${process.version}`,
    `- Request: \`POST /v1/embeddings\` ${BODY.length} bytes, one ${TEXT.split(' ').length}-word text, base64 answer of ${DIMS} dims`,
    '',
    '| stage | implementation | ns per call |',
    '|---|---|---:|',
    ...rows.map((r) => `| ${r.stage} | ${r.name} | ${Number.isFinite(r.ns) ? r.ns.toFixed(0) : '—'} |`),
    '',
    'A request repeated byte for byte skips parse, key, lookup and encode through its hot answer (server/hot-answers.ts); any other cached text takes the typed-parse, one-shot key, resolve and hand-written encode rows.',
    '',
  ].join('\n');
  process.stdout.write(md + '\n');
  const out = path.join(ROOT, 'bench', 'results', 'hit-path.md');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, md);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `[bench:hit-path] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
