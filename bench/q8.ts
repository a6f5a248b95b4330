// `npm run bench:q8`: the text lane's fp32 and q8 (dynamic int8) weights side by side in one run,
// written to bench/results/q8.md:
//   (a) and (a8): the machine's raw ONNX Runtime ceilings with onnx/model.onnx and
//       onnx/model_quantized.onnx, over every thread layout that fits the cores and every batch size
//       the lane may form;
//   (b) and (b8): the server with its defaults and with TWINLANE_TEXT_DTYPE=q8, unique texts;
//   (t) and (t8): @huggingface/transformers with dtype fp32 and q8 (which loads the same
//       model_quantized.onnx), like for like;
//   and the q8 vectors' cosine to the fp32 ones over the held-out sentences of the stand-in's
//   semantic check, through the two servers, with that check's paraphrase ranking under each.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config.js';
import { SEMANTIC_SENTENCES, SEMANTIC_TRIPLES } from './fixtures/semantic.js';
import { SentenceSource } from './fixtures/texts.js';
import {
  ceilingOverLayouts,
  ceilingWindow,
  layoutName,
  layoutsFor,
  measureCeiling,
  type LayoutRow,
} from './lib/ceiling.js';
import { killChildren, ROOT, startChild, stopChild, waitReady, type Child } from './lib/children.js';
import { disturbed } from './lib/cpu.js';
import { machineLines, quietSample } from './lib/machine.js';
import {
  CEILING_MS,
  cpuCells,
  errorNote,
  f0,
  f1,
  f2,
  loadPhase,
  MEASURE_MS,
  phaseRow,
  resultsHeader,
  WARMUP_MS,
  type Phase,
} from './lib/phase.js';
import { pairedRatio, pairedSection, PAIRED_WINDOW_MS, serverWindow, type Paired } from './lib/paired.js';

const TEXT_MODEL = 'twinlane/minilm-l6-standin';
const IMAGE_MODEL = 'twinlane/clip-vision-standin';
const CONCURRENCY = 64;
const BATCH_SIZES = [1, 4, 8, 16, 32];
const TARGET_SERVER_VS_CEILING = 0.85;
const progress = (line: string) => process.stderr.write(`[bench:q8] ${line}\n`);

interface Weights {
  readonly dtype: 'fp32' | 'q8';
  readonly file: string;
}

const FP32: Weights = { dtype: 'fp32', file: 'onnx/model.onnx' };
const Q8: Weights = { dtype: 'q8', file: 'onnx/model_quantized.onnx' };

interface Ceiling {
  readonly rows: LayoutRow[];
  readonly best: LayoutRow;
  /** The best row measured again after the server phases; the ceiling is the higher of the two. */
  readonly recheck: LayoutRow;
  readonly value: number;
}

async function ceiling(
  weights: Weights,
  modelDir: string,
  texts: SentenceSource,
  batchSizes: readonly number[],
): Promise<Omit<Ceiling, 'recheck' | 'value'>> {
  const base = { modelDir, onnxFile: weights.file, nextText: () => texts.next(), minMs: CEILING_MS };
  return ceilingOverLayouts(base, layoutsFor(os.availableParallelism()), batchSizes, (line) =>
    progress(`(${weights.dtype === 'q8' ? 'a8' : 'a'}) raw ${weights.dtype}: ${line}`),
  );
}

async function recheck(
  weights: Weights,
  modelDir: string,
  texts: SentenceSource,
  found: Omit<Ceiling, 'recheck' | 'value'>,
): Promise<Ceiling> {
  progress(`re-check of the ${weights.dtype} ceiling: ${layoutName(found.best)} at batch ${found.best.batchSize}`);
  const [row] = await measureCeiling({
    modelDir,
    onnxFile: weights.file,
    nextText: () => texts.next(),
    minMs: CEILING_MS,
    sessions: found.best.sessions,
    intraOpThreads: found.best.intraOpThreads,
    batchSizes: [found.best.batchSize],
  });
  if (!row) throw new Error('ceiling re-check returned nothing');
  const again: LayoutRow = { ...row, sessions: found.best.sessions, intraOpThreads: found.best.intraOpThreads };
  return { ...found, recheck: again, value: Math.max(found.best.textsPerSecond, again.textsPerSecond) };
}

/** Each held-out sentence's vector, from a server or transformers.js, by /v1/embeddings. */
async function heldOutVectors(child: Child): Promise<Float32Array[]> {
  const res = await fetch(`http://127.0.0.1:${child.port}/v1/embeddings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: TEXT_MODEL, input: SEMANTIC_SENTENCES, encoding_format: 'base64' }),
  });
  if (res.status !== 200) throw new Error(`held-out sentences got HTTP ${res.status}`);
  const body = (await res.json()) as { data: { embedding: string }[] };
  return body.data.map((d) => new Float32Array(Uint8Array.from(Buffer.from(d.embedding, 'base64')).buffer));
}

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * b[i]!, 0);

/** How many anchors rank their own paraphrase first among all 36 sentences (the semantic check's retrieval). */
function paraphrasesFirst(vectors: readonly Float32Array[]): number {
  return SEMANTIC_TRIPLES.filter((_, t) => {
    const anchor = vectors[t * 3]!;
    let best = -1;
    vectors.forEach((v, i) => {
      if (i !== t * 3 && (best === -1 || dot(anchor, v) > dot(anchor, vectors[best]!))) best = i;
    });
    return best === t * 3 + 1;
  }).length;
}

interface ServerRun {
  readonly phase: Phase;
  readonly vectors: Float32Array[];
  /** Against a ceiling window alternated with server windows after the phase (bench/lib/paired.ts). */
  readonly paired?: Paired;
}

async function serverRun(
  label: string,
  script: string,
  env: NodeJS.ProcessEnv,
  texts: SentenceSource,
  pairedCeiling?: () => Promise<number>,
): Promise<ServerRun> {
  let child: Child | undefined;
  try {
    child = await startChild(script, env);
    if (script === 'dist/src/main.js') await waitReady(child.port);
    const vectors = await heldOutVectors(child);
    const body = () => JSON.stringify({ model: TEXT_MODEL, input: texts.next(), encoding_format: 'base64' });
    const load = { path: '/v1/embeddings', concurrency: CONCURRENCY, body };
    const phase = await loadPhase(label, child, load);
    if (!pairedCeiling) return { phase, vectors };
    return { phase, vectors, paired: await pairedRatio(`${label} paired`, pairedCeiling, serverWindow(child, load)) };
  } finally {
    await stopChild(child);
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  const modelsDir = path.resolve(ROOT, process.env['TWINLANE_MODELS_DIR'] ?? '../shared/models');
  const modelDir = path.join(modelsDir, TEXT_MODEL);
  const serverEnv: NodeJS.ProcessEnv = {
    ...process.env,
    TWINLANE_PORT: '0',
    TWINLANE_HOST: '127.0.0.1',
    TWINLANE_MODELS_DIR: modelsDir,
    TWINLANE_TEXT_MODEL: TEXT_MODEL,
    TWINLANE_IMAGE_MODEL: IMAGE_MODEL,
    TWINLANE_OFFLINE: 'true',
  };
  const config = loadConfig([], serverEnv);
  const batchSizes = BATCH_SIZES.filter((b) => b <= config.textMaxBatchItems);
  const quiet = await quietSample(progress);

  const ceilingTexts = new SentenceSource(0, 300_000);
  const found = {
    fp32: await ceiling(FP32, modelDir, ceilingTexts, batchSizes),
    q8: await ceiling(Q8, modelDir, ceilingTexts, batchSizes),
  };
  const texts = new SentenceSource(300_000, 700_000);
  const tjsEnv = (dtype: string) => ({
    ...process.env,
    TJS_MODELS_DIR: modelsDir,
    TJS_MODEL: TEXT_MODEL,
    TJS_DTYPE: dtype,
  });
  const b = await serverRun('(b) server, fp32 weights', 'dist/src/main.js', serverEnv, texts);
  const b8 = await serverRun(
    '(b8) server, TWINLANE_TEXT_DTYPE=q8',
    'dist/src/main.js',
    { ...serverEnv, TWINLANE_TEXT_DTYPE: 'q8' },
    texts,
    ceilingWindow(
      { modelDir, onnxFile: Q8.file, nextText: () => ceilingTexts.next() },
      found.q8.best,
      PAIRED_WINDOW_MS,
    ),
  );
  const t = await serverRun(
    '(t) transformers.js, dtype fp32',
    'dist/bench/workers/transformers-server.js',
    tjsEnv('fp32'),
    texts,
  );
  const t8 = await serverRun(
    '(t8) transformers.js, dtype q8',
    'dist/bench/workers/transformers-server.js',
    tjsEnv('q8'),
    texts,
  );
  const a = await recheck(FP32, modelDir, ceilingTexts, found.fp32);
  const a8 = await recheck(Q8, modelDir, ceilingTexts, found.q8);

  const cosines = b.vectors.map((v, i) => dot(v, b8.vectors[i]!));
  const tjsCosines = t.vectors.map((v, i) => dot(v, b.vectors[i]!));
  const tjs8Cosines = t8.vectors.map((v, i) => dot(v, b8.vectors[i]!));
  const md = report({ started, quiet, config, a, a8, b, b8, t, t8, cosines, tjsCosines, tjs8Cosines });
  process.stdout.write(md + '\n');
  const out = path.join(ROOT, 'bench', 'results', 'q8.md');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, md);
  progress(`written to ${path.relative(ROOT, out)}`);
}

interface Figures {
  readonly started: number;
  readonly quiet: Parameters<typeof machineLines>[0];
  readonly config: ReturnType<typeof loadConfig>;
  readonly a: Ceiling;
  readonly a8: Ceiling;
  readonly b: ServerRun;
  readonly b8: ServerRun;
  readonly t: ServerRun;
  readonly t8: ServerRun;
  readonly cosines: readonly number[];
  readonly tjsCosines: readonly number[];
  readonly tjs8Cosines: readonly number[];
}

function ceilingRows(c: Ceiling, dtype: string): string[] {
  return [...c.rows, c.recheck].map(
    (r, i) =>
      `| ${dtype} | ${layoutName(r)} | ${r.batchSize}${i === c.rows.length ? ' (re-check)' : r === c.best ? ' (best)' : ''} | ${f1(r.textsPerSecond)} | ${f1(r.msPerRun)} | ${f1(r.meanTokens)} | ${f2(r.cpu.other)} | ${f2(r.cpu.steal)}${disturbed(r.cpu) ? ' ⚠' : ''} |`,
  );
}

function report(f: Figures): string {
  const { a, a8, b, b8, t, t8, config } = f;
  const rate = (r: ServerRun) => r.phase.load.throughput;
  const p99 = (r: ServerRun) => r.phase.load.latencyMs.p99;
  const ratio = rate(b8) / a8.value;
  const paired = b8.paired!;
  const notes = [b, b8, t, t8].map((r) => errorNote(r.phase)).filter((n): n is string => n !== null);
  const ceilingRow = (label: string, c: Ceiling) =>
    `| ${label}: ${layoutName(c.value === c.best.textsPerSecond ? c.best : c.recheck)}, batch ${c.best.batchSize} | ${f0(c.value)} | — | — | — | — | — | ${cpuCells((c.value === c.best.textsPerSecond ? c.best : c.recheck).cpu, c.value, false)} |`;
  const minOf = (xs: readonly number[]) => Math.min(...xs);
  return [
    '# fp32 vs q8 weights (text lane)',
    '',
    `Written by \`npm run bench:q8\` (bench/q8.ts) on ${new Date(f.started).toISOString()}, ${((Date.now() - f.started) / 1000).toFixed(0)} s in all.`,
    '',
    ...machineLines(f.quiet),
    `- Model: \`${TEXT_MODEL}\`: \`${FP32.file}\` (fp32) and \`${Q8.file}\` (dynamic int8: MatMulInteger, per-column int8 weights); the servers run with their defaults (text lane ${config.textThreads} × ${config.textIntraOpThreads}, max batch ${config.textMaxBatchItems}; the image lane \`${IMAGE_MODEL}\` on and idle), (b8) with \`TWINLANE_TEXT_DTYPE=q8\``,
    `- Load: ${CONCURRENCY} closed-loop keep-alive clients, ${WARMUP_MS / 1000} s warm-up + ${MEASURE_MS / 1000} s measured per phase, \`POST /v1/embeddings\` with one never-repeated sentence of 10–20 words (base64 answers); the same load for every phase`,
    '',
    '## Results',
    '',
    ...resultsHeader('texts'),
    ceilingRow("(a) the machine's raw fp32 ceiling", a),
    ceilingRow("(a8) the machine's raw q8 ceiling", a8),
    phaseRow(b.phase),
    phaseRow(b8.phase),
    phaseRow(t.phase),
    phaseRow(t8.phase),
    '',
    ...(notes.length ? notes : ['No phase had a non-2xx answer or a socket error.']),
    '',
    '| ratio | value | target | |',
    '|---|---:|---:|---|',
    `| b8/a8: q8 server ÷ the machine's q8 ceiling, in the same minutes (paired windows below) | ${f2(paired.ratio)} | ≥ ${TARGET_SERVER_VS_CEILING} | ${paired.errors > 0 ? 'void (errors)' : paired.ratio >= TARGET_SERVER_VS_CEILING ? 'met' : 'not met'} |`,
    `| b8/a8 against (a8) as tabled: the sweep's best row or its re-check, minutes apart from (b8) | ${f2(ratio)} | ≥ ${TARGET_SERVER_VS_CEILING} | ${ratio >= TARGET_SERVER_VS_CEILING ? 'met' : 'not met'} |`,
    `| a8/a: q8 ÷ fp32, raw ceilings | ${f2(a8.value / a.value)} | — | |`,
    `| b8/b: q8 ÷ fp32, server | ${f2(rate(b8) / rate(b))} | — | |`,
    `| b8 p99 ÷ b p99 | ${f2(p99(b8) / p99(b))} | — | |`,
    `| b8/t8: q8 server ÷ transformers.js q8 | ${f2(rate(b8) / rate(t8))} | — | |`,
    `| b8 p99 ÷ t8 p99 | ${f2(p99(b8) / p99(t8))} | — | |`,
    `| b/t: fp32 server ÷ transformers.js fp32 | ${f2(rate(b) / rate(t))} | — | |`,
    '',
    '## (b8) and (a8) in the same minutes',
    '',
    ...pairedSection(paired, '(b8)', `q8, ${layoutName(a8.best)} at batch ${a8.best.batchSize}`, 'texts'),
    '',
    '## Vectors',
    '',
    `Over the ${f.cosines.length} held-out sentences of the stand-in's semantic check (12 anchors, paraphrases and unrelated sentences; no load phase sends them), embedded by each server before its load:`,
    '',
    `- q8 against fp32 (b8 vs b): minimum cosine ${f.cosines.length ? minOf(f.cosines).toFixed(5) : '—'}, mean ${(f.cosines.reduce((s, c) => s + c, 0) / f.cosines.length).toFixed(5)}`,
    `- transformers.js against the server, same weights: fp32 minimum cosine ${minOf(f.tjsCosines).toFixed(6)}, q8 ${minOf(f.tjs8Cosines).toFixed(6)}`,
    `- anchors whose paraphrase ranks first among all ${f.cosines.length} sentences: fp32 ${paraphrasesFirst(b.vectors)}/12, q8 ${paraphrasesFirst(b8.vectors)}/12`,
    '',
    '## Raw ceilings by thread layout and batch size',
    '',
    `Every layout of sessions × intra-op threads that fits the machine's ${os.availableParallelism()} cores, each session on its own worker thread with the lane's session options, pre-tokenized, padded to the longest row of each batch; ≥ ${CEILING_MS / 1000} s and ≥ 3 runs per row; the best row of each is measured again after the server phases.`,
    '',
    '| weights | layout | batch | texts/s | ms per run | mean tokens/text | other programs (cores) | steal (cores) |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...ceilingRows(a, 'fp32'),
    ...ceilingRows(a8, 'q8'),
    '',
  ].join('\n');
}

main()
  .catch((error: unknown) => {
    process.stderr.write(
      `[bench:q8] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  })
  .finally(killChildren);
