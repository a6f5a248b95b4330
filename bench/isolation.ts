// `npm run bench:isolation`: does an image flood slow text down? One server (both lanes, default
// thread budget), two phases run one after the other in this process:
//   (1) text alone: 32 clients sending unique texts,
//   (2) the same text load while 64 image clients send distinct images far beyond the image lane's
//       capacity (most get 429 and retry at once, as a misbehaving client would).
// Writes bench/results/isolation.md with text p50/p95/p99, throughput, 429 counts and the ratios.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { loadConfig } from '../src/config.js';
import { killChildren, ROOT, startChild, stopChild, waitReady, type Child } from './children.js';
import { cpuMark, cpuSince, type CpuShare } from './cpu.js';
import { runLoad, type LoadResult } from './load.js';
import { scrape, value } from './scrape.js';
import { SentenceSource } from './texts.js';

const TEXT_MODEL = 'twinlane/minilm-l6-standin';
const IMAGE_MODEL = 'twinlane/clip-vision-standin';
const TEXT_CLIENTS = 32;
const IMAGE_CLIENTS = 256;
const WARMUP_MS = 3000;
const MEASURE_MS = Number(process.env['BENCH_MEASURE_S'] ?? '12') * 1000;
const TARGETS = { p99: 1.5, throughput: 0.8 };

const progress = (line: string) => process.stderr.write(`[bench:isolation] ${line}\n`);

/** PNG chunks are length, type, data, CRC; a tEXt chunk changes the bytes (and the cache key), not the pixels. */
function withTextChunk(png: Buffer, text: string): Buffer {
  const data = Buffer.from(`Comment\0${text}`, 'latin1');
  const chunk = Buffer.alloc(12 + data.length);
  chunk.writeUInt32BE(data.length, 0);
  chunk.write('tEXt', 4, 'latin1');
  data.copy(chunk, 8);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + data.length)), 8 + data.length);
  const iend = png.length - 12;
  return Buffer.concat([png.subarray(0, iend), chunk, png.subarray(iend)]);
}

interface TextPhase {
  readonly text: LoadResult;
  readonly image: LoadResult | null;
  readonly cpu: CpuShare;
  readonly rejections: { readonly text: number; readonly image: number };
}

interface Flood {
  readonly body: () => string;
  readonly honorRetryAfter: boolean;
}

async function phase(server: Child, texts: SentenceSource, flood: Flood | null): Promise<TextPhase> {
  const before = await scrape(server.port);
  const mark = cpuMark(server.pid);
  const textBody = () => JSON.stringify({ model: TEXT_MODEL, input: texts.next(), encoding_format: 'base64' });
  const textLoad = runLoad({ port: server.port, path: '/v1/embeddings', concurrency: TEXT_CLIENTS, warmupMs: WARMUP_MS, durationMs: MEASURE_MS, body: textBody, contentType: 'application/json' });
  const imageLoad = flood && runLoad({ port: server.port, path: '/embed/image', concurrency: IMAGE_CLIENTS, warmupMs: WARMUP_MS, durationMs: MEASURE_MS, body: flood.body, contentType: 'application/json', honorRetryAfter: flood.honorRetryAfter });
  const [text, image] = await Promise.all([textLoad, imageLoad]);
  const cpu = cpuSince(mark, server.pid);
  const after = await scrape(server.port);
  const rejected = (lane: string) => value(after, 'twinlane_lane_rejections_total', { lane }) - value(before, 'twinlane_lane_rejections_total', { lane });
  return { text, image, cpu, rejections: { text: rejected('text'), image: rejected('image') } };
}

const f0 = (n: number) => n.toFixed(0);
const f2 = (n: number) => n.toFixed(2);

async function main(): Promise<void> {
  const started = Date.now();
  const modelsDir = path.resolve(ROOT, process.env['TWINLANE_MODELS_DIR'] ?? '../shared/models');
  const env = { ...process.env, TWINLANE_MODELS_DIR: modelsDir, TWINLANE_TEXT_MODEL: TEXT_MODEL, TWINLANE_IMAGE_MODEL: IMAGE_MODEL, TWINLANE_OFFLINE: 'true', TWINLANE_PORT: '0' };
  const config = loadConfig([], env);
  const base = await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 40, g: 120, b: 200 } } }).png().toBuffer();
  let imageCount = 0;
  const imageBody = () => JSON.stringify({ inputs: [{ b64: withTextChunk(base, `flood ${imageCount++}`).toString('base64') }] });

  let server: Child | undefined;
  let alone: TextPhase;
  let flooded: TextPhase;
  let hammered: TextPhase;
  try {
    server = await startChild('dist/src/main.js', env);
    await waitReady(server.port);
    progress('phase 1: text alone');
    alone = await phase(server, new SentenceSource(0, 200_000), null);
    progress('phase 2: text under an image flood (clients honour Retry-After)');
    flooded = await phase(server, new SentenceSource(200_000, 200_000), { body: imageBody, honorRetryAfter: true });
    progress('phase 3: text under an image flood (clients retry at once)');
    hammered = await phase(server, new SentenceSource(400_000, 200_000), { body: imageBody, honorRetryAfter: false });
  } catch (error) {
    killChildren();
    throw error;
  } finally {
    await stopChild(server);
  }

  const text429 = (r: LoadResult) => r.statuses['429'] ?? 0;
  const verdict = (ok: boolean) => (ok ? 'met' : 'not met');
  const row = (label: string, p: TextPhase) =>
    `| ${label} | ${f0(p.text.throughput)} | ${f2(p.text.latencyMs.p50)} | ${f2(p.text.latencyMs.p95)} | ${f2(p.text.latencyMs.p99)} | ${text429(p.text)} | ${p.text.non2xx - text429(p.text) + p.text.socketErrors} | ${f2(p.cpu.target)} | ${f2(p.cpu.loadGen)} | ${f2(p.cpu.other + p.cpu.steal)} |`;
  const floodLine = (label: string, p: TextPhase) => {
    const image = p.image!;
    return `- Image flood during ${label}: ${Object.entries(image.statuses).map(([s, n]) => `${n}× ${s}`).join(', ')} over the phase (warm-up included); lane rejections counted by the server: image ${p.rejections.image}, text ${p.rejections.text}; images embedded ≈ ${f0(((image.statuses['200'] ?? 0) / (WARMUP_MS + MEASURE_MS)) * 1000)}/s.`;
  };
  const targets = (label: string, p: TextPhase) => {
    const p99 = p.text.latencyMs.p99 / alone.text.latencyMs.p99;
    const throughput = p.text.throughput / alone.text.throughput;
    return [
      `| ${label}: text p99 ÷ text p99 alone | ${f2(p99)} | ≤ ${TARGETS.p99} | ${verdict(p99 <= TARGETS.p99)} |`,
      `| ${label}: text throughput ÷ alone | ${f2(throughput)} | ≥ ${TARGETS.throughput} | ${verdict(throughput >= TARGETS.throughput)} |`,
      `| ${label}: text 429s | ${text429(p.text)} | 0 | ${verdict(text429(p.text) === 0)} |`,
    ];
  };
  const md = [
    '# Lane isolation benchmark',
    '',
    `Written by \`npm run bench:isolation\` (bench/isolation.ts) on ${new Date(started).toISOString()}, ${((Date.now() - started) / 1000).toFixed(0)} s in all.`,
    '',
    `- Machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.availableParallelism()} cores; Node ${process.version}`,
    `- Server defaults for this machine: text lane ${config.textThreads}×${config.textIntraOpThreads} threads (max batch ${config.textMaxBatchItems}, queue ${config.textMaxQueue}); image lane ${config.imageThreads}×${config.imageIntraOpThreads} at nice ${config.imageNice} (max batch ${config.imageMaxBatchItems}, queue ${config.imageMaxQueue})`,
    `- Text load: ${TEXT_CLIENTS} closed-loop keep-alive clients, unique sentences, \`POST /v1/embeddings\` (base64). Image flood: ${IMAGE_CLIENTS} closed-loop clients (${(IMAGE_CLIENTS / config.imageMaxQueue).toFixed(0)}× the image queue), a distinct 320×240 PNG per request as base64 JSON to \`POST /embed/image\`; in (2) a client that gets 429 waits its \`Retry-After\` as the official openai client does, in (3) it retries at once`,
    `- ${WARMUP_MS / 1000} s warm-up + ${MEASURE_MS / 1000} s measured per phase; the load generator runs in the bench process on the same 2 cores as the server (a child process)`,
    '',
    '## Text under an image flood',
    '',
    '| phase | text/s | p50 ms | p95 ms | p99 ms | text 429s | other text errors | server (cores) | load gen (cores) | other + steal (cores) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    row('(1) text alone', alone),
    row('(2) text + image flood, Retry-After honoured', flooded),
    row('(3) text + image flood, no back-off', hammered),
    '',
    floodLine('(2)', flooded),
    floodLine('(3)', hammered),
    '',
    '| target | measured | goal | |',
    '|---|---:|---:|---|',
    ...targets('(2)', flooded),
    ...targets('(3)', hammered),
    '',
  ].join('\n');
  const out = path.join(ROOT, 'bench/results/isolation.md');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, md);
  process.stdout.write(md + `\nwritten to ${path.relative(ROOT, out)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`[bench:isolation] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
