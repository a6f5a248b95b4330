// `npm run bench:isolation`: does an image flood slow text down? One server (both lanes, default
// thread budget), phases run one after the other in this process:
//   (1) text alone: 32 clients sending unique texts,
//   (2) the same text load while 256 image clients send distinct images far beyond the image lane's
//       capacity and honour Retry-After, as the official openai client does,
//   (3) the same with image clients that retry a 429 at once,
//   (4) the same with an open-loop flood: distinct-image requests of about 100 KB of base64 JSON
//       started at a fixed rate whatever the answers;
// then (4)'s flood alone against a bare uWebSockets.js server that refuses every request unread with
// the same held 429 (bench/workers/shed-floor-server.ts): the floor a refusal's main-thread CPU is
// compared with.
// During (2)–(4) a trickle of requests for images that are already cached (CACHED_RATE a second on
// four sockets, honouring Retry-After) shows how many are still answered; a trickle, not closed-loop
// clients, since cache hits answered as fast as they come would be a third flood of their own. Writes bench/results/isolation.md with text p50/p95/p99, throughput, 429s and the ratios.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config.js';
import { killChildren, post, ROOT, startChild, stopChild, waitReady, type Child } from './lib/children.js';
import { cpuMark, cpuSince, threadCpuSeconds, type CpuShare } from './lib/cpu.js';
import { CACHED_IMAGES, imageBodies, type BodyKind } from './fixtures/flood-bodies.js';
import { runLoad, type LoadResult } from './lib/load.js';
import { loadInThread } from './lib/load-thread.js';
import { scrape, value } from './lib/scrape.js';
import { SentenceSource } from './fixtures/texts.js';

const TEXT_MODEL = 'twinlane/minilm-l6-standin';
const IMAGE_MODEL = 'twinlane/clip-vision-standin';
const TEXT_CLIENTS = 32;
const IMAGE_CLIENTS = 256;
/** (4): requests started per second, and the sockets they may use. */
const OPEN_LOOP_RATE = Number(process.env['BENCH_FLOOD_RATE'] ?? '5000');
// Enough that the server holding each shed 429 (TWINLANE_SHED_HOLD_MS) does not cap the rate: at 5,000/s and
// 100 ms, about 500 sockets wait on held answers at any time.
const OPEN_LOOP_SOCKETS = 2048;
const CACHED_CLIENTS = 4;
/** Cached-image requests started per second during (2)–(4), open loop. */
const CACHED_RATE = 100;

const WARMUP_MS = 3000;
const MEASURE_MS = Number(process.env['BENCH_MEASURE_S'] ?? '12') * 1000;
const TARGETS = { p99: 1.5, throughput: 0.8 };

const progress = (line: string) => process.stderr.write(`[bench:isolation] ${line}\n`);

interface TextPhase {
  readonly text: LoadResult;
  readonly image: LoadResult | null;
  readonly cached: LoadResult | null;
  readonly cpu: CpuShare;
  /** Cores' worth of the server's main thread (the one both lanes share). */
  readonly mainThread: number;
  readonly rejections: {
    readonly text: number;
    readonly image: number;
    readonly shed: number;
    readonly uncached: number;
  };
}

interface Flood {
  readonly kind: BodyKind;
  readonly honorRetryAfter: boolean;
  /** Open loop at this rate instead of closed-loop clients. */
  readonly arrivalsPerSecond?: number;
}

async function phase(server: Child, texts: SentenceSource, flood: Flood | null): Promise<TextPhase> {
  const before = await scrape(server.port);
  const mark = cpuMark(server.pid);
  const mainBefore = threadCpuSeconds(server.pid, server.pid);
  const textBody = () => JSON.stringify({ model: TEXT_MODEL, input: texts.next(), encoding_format: 'base64' });
  const window = { port: server.port, warmupMs: WARMUP_MS, durationMs: MEASURE_MS, contentType: 'application/json' };
  const textLoad = runLoad({ ...window, path: '/v1/embeddings', concurrency: TEXT_CLIENTS, body: textBody });
  const imageLoad =
    flood &&
    loadInThread({
      ...window,
      path: '/embed/image',
      concurrency: flood.arrivalsPerSecond ? OPEN_LOOP_SOCKETS : IMAGE_CLIENTS,
      bodies: { kind: flood.kind },
      honorRetryAfter: flood.honorRetryAfter,
      ...(flood.arrivalsPerSecond ? { arrivalsPerSecond: flood.arrivalsPerSecond } : {}),
    });
  const cachedLoad =
    flood &&
    loadInThread({
      ...window,
      path: '/embed/image',
      concurrency: CACHED_CLIENTS,
      arrivalsPerSecond: CACHED_RATE,
      bodies: { kind: 'cached' },
      honorRetryAfter: true,
    });
  const [text, image, cached] = await Promise.all([textLoad, imageLoad, cachedLoad]);
  const cpu = cpuSince(mark, server.pid);
  const mainThread = (threadCpuSeconds(server.pid, server.pid) - mainBefore) / ((WARMUP_MS + MEASURE_MS) / 1000);
  const after = await scrape(server.port);
  const rejected = (labels: Record<string, string>) =>
    value(after, 'twinlane_lane_rejections_total', labels) - value(before, 'twinlane_lane_rejections_total', labels);
  return {
    text,
    image,
    cached,
    cpu,
    mainThread,
    rejections: {
      text: rejected({ lane: 'text' }),
      image: rejected({ lane: 'image' }),
      shed: rejected({ lane: 'image', reason: 'shed' }),
      uncached: rejected({ lane: 'image', reason: 'uncached' }),
    },
  };
}

/** (4)'s flood alone against the bare refusing server: its main thread's CPU per refusal. */
async function shedFloor(holdMs: number): Promise<{ usPerRefusal: number; refusals: number; cores: number }> {
  const floor = await startChild('dist/bench/workers/shed-floor-server.js', {
    ...process.env,
    SHED_HOLD_MS: String(holdMs),
  });
  try {
    const before = threadCpuSeconds(floor.pid, floor.pid);
    const flood = await loadInThread({
      port: floor.port,
      path: '/embed/image',
      warmupMs: WARMUP_MS,
      durationMs: MEASURE_MS,
      contentType: 'application/json',
      concurrency: OPEN_LOOP_SOCKETS,
      bodies: { kind: 'noise' },
      honorRetryAfter: false,
      arrivalsPerSecond: OPEN_LOOP_RATE,
    });
    const seconds = threadCpuSeconds(floor.pid, floor.pid) - before;
    const refusals = flood.statuses['429'] ?? 0;
    return {
      usPerRefusal: (seconds * 1e6) / Math.max(1, refusals),
      refusals,
      cores: seconds / ((WARMUP_MS + MEASURE_MS) / 1000),
    };
  } finally {
    await stopChild(floor);
  }
}

const f0 = (n: number) => n.toFixed(0);
const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);

async function main(): Promise<void> {
  const started = Date.now();
  const modelsDir = path.resolve(ROOT, process.env['TWINLANE_MODELS_DIR'] ?? '../shared/models');
  const env = {
    ...process.env,
    TWINLANE_MODELS_DIR: modelsDir,
    TWINLANE_TEXT_MODEL: TEXT_MODEL,
    TWINLANE_IMAGE_MODEL: IMAGE_MODEL,
    TWINLANE_OFFLINE: 'true',
    TWINLANE_PORT: '0',
  };
  const config = loadConfig([], env);
  const cachedBody = await imageBodies('cached');
  const sampleBytes = (await imageBodies('noise'))().length;

  let server: Child | undefined;
  let alone: TextPhase;
  let flooded: TextPhase;
  let hammered: TextPhase;
  let openLoop: TextPhase;
  try {
    server = await startChild('dist/src/main.js', env);
    await waitReady(server.port);
    for (let i = 0; i < CACHED_IMAGES; i++) await post(server.port, '/embed/image', cachedBody());
    progress('phase 1: text alone');
    alone = await phase(server, new SentenceSource(0, 200_000), null);
    progress('phase 2: text under an image flood (clients honour Retry-After)');
    flooded = await phase(server, new SentenceSource(200_000, 200_000), { kind: 'small', honorRetryAfter: true });
    progress('phase 3: text under an image flood (clients retry at once)');
    hammered = await phase(server, new SentenceSource(400_000, 200_000), { kind: 'small', honorRetryAfter: false });
    progress(`phase 4: text under an open-loop flood of ${OPEN_LOOP_RATE} image requests/s`);
    openLoop = await phase(server, new SentenceSource(600_000, 200_000), {
      kind: 'noise',
      honorRetryAfter: false,
      arrivalsPerSecond: OPEN_LOOP_RATE,
    });
  } catch (error) {
    killChildren();
    throw error;
  } finally {
    await stopChild(server);
  }
  progress("floor: (4)'s flood against a bare uWebSockets.js server that refuses unread");
  const floor = await shedFloor(config.shedHoldMs);

  const text429 = (r: LoadResult) => r.statuses['429'] ?? 0;
  const verdict = (ok: boolean) => (ok ? 'met' : 'not met');
  const row = (label: string, p: TextPhase) =>
    `| ${label} | ${f0(p.text.throughput)} | ${f2(p.text.latencyMs.p50)} | ${f2(p.text.latencyMs.p95)} | ${f2(p.text.latencyMs.p99)} | ${text429(p.text)} | ${p.text.non2xx - text429(p.text) + p.text.socketErrors} | ${f2(p.cpu.target)} | ${f2(p.cpu.loadGen)} | ${f2(p.cpu.other + p.cpu.steal)} |`;
  const floodLine = (label: string, p: TextPhase) => {
    const image = p.image!;
    const cached = p.cached!;
    const cachedOk =
      (cached.statuses['200'] ?? 0) /
      Math.max(
        1,
        Object.values(cached.statuses).reduce((a, b) => a + b, 0),
      );
    return [
      `- Image flood during ${label}: ${Object.entries(image.statuses)
        .map(([s, n]) => `${n}× ${s}`)
        .join(
          ', ',
        )} over the phase (warm-up included)${image.notSent > 0 ? `, ${image.notSent} due but not sent (all ${OPEN_LOOP_SOCKETS} sockets busy)` : ''}; lane rejections counted by the server: image ${p.rejections.image} (of which ${p.rejections.shed} shed before their body was read, ${p.rejections.uncached} read for L1 and refused for an image not there), text ${p.rejections.text}; images embedded ≈ ${f0(((image.statuses['200'] ?? 0) / (WARMUP_MS + MEASURE_MS)) * 1000)}/s.`,
      `- Cached images during ${label} (${CACHED_RATE}/s on ${CACHED_CLIENTS} sockets, honouring Retry-After): ${Object.entries(
        cached.statuses,
      )
        .map(([s, n]) => `${n}× ${s}`)
        .join(', ')}; **${(cachedOk * 100).toFixed(0)} %** answered 200.`,
      ...(image.retried.sent > 0
        ? [
            `- Retry-After during ${label}: the flood's clients waited it ${image.retried.sent} times; the next try was answered 200 ${image.retried.ok} times (${((100 * image.retried.ok) / image.retried.sent).toFixed(0)} %).`,
          ]
        : []),
    ].join('\n');
  };
  // What a refused image request costs the main thread: its CPU beyond what its text answers cost
  // there at the rate measured alone, per refusal (the kernel's share of each socket read and write
  // included, as it is charged to the thread that makes the call).
  const seconds = (WARMUP_MS + MEASURE_MS) / 1000;
  const mainPerText = alone.mainThread / alone.text.throughput;
  const perRefusal = (p: TextPhase) =>
    (Math.max(0, p.mainThread - p.text.throughput * mainPerText) * seconds * 1e6) / Math.max(1, p.rejections.image);
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
    `- Text load: ${TEXT_CLIENTS} closed-loop keep-alive clients, unique sentences, \`POST /v1/embeddings\` (base64). Image flood: ${IMAGE_CLIENTS} closed-loop clients (${(IMAGE_CLIENTS / config.imageMaxQueue).toFixed(0)}× the image queue), a distinct 320×240 PNG per request as base64 JSON to \`POST /embed/image\`; in (2) a client that gets 429 waits its \`Retry-After\` as the official openai client does, in (3) it retries at once; (4) is open loop (below)`,
    `- Server shedding: a lane at its queue bound that refused more than ${config.shedAfterRefusalsPerSecond} requests in a second is stormed: a request announcing a body of at most ${config.shedReadMaxBytes} bytes (TWINLANE_SHED_READ_MAX_BYTES) is read and answered from L1 only (refused if an item is not there), any other is shed at header time, ${config.shedProbesPerSecond} probes a second excepted; while a stormed lane has room, only as many requests as fit it are read`,
    `- Cached images: during (2)–(4), ${CACHED_RATE} requests a second (open loop on ${CACHED_CLIENTS} sockets, honouring Retry-After) for the ${CACHED_IMAGES} images embedded before the phases`,
    `- ${WARMUP_MS / 1000} s warm-up + ${MEASURE_MS / 1000} s measured per phase; the load generator runs in the bench process on the same 2 cores as the server (a child process), each image flood in a thread of its own so its bodies do not delay the text clients`,
    '',
    '## Text under an image flood',
    '',
    '| phase | text/s | p50 ms | p95 ms | p99 ms | text 429s | other text errors | server (cores) | load gen (cores) | other + steal (cores) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    row('(1) text alone', alone),
    row('(2) text + image flood, Retry-After honoured', flooded),
    row('(3) text + image flood, no back-off', hammered),
    row(`(4) text + open-loop flood, ${OPEN_LOOP_RATE} image requests/s`, openLoop),
    '',
    floodLine('(2)', flooded),
    floodLine('(3)', hammered),
    floodLine('(4)', openLoop),
    `- (4)'s requests: distinct ${f0(sampleBytes / 1024)} KiB base64 JSON bodies (random-noise PNGs), started at ${OPEN_LOOP_RATE}/s on up to ${OPEN_LOOP_SOCKETS} sockets whatever the answers; ${openLoop.image!.sent} sent in ${(WARMUP_MS + MEASURE_MS) / 1000} s (${f0(openLoop.image!.sent / ((WARMUP_MS + MEASURE_MS) / 1000))}/s). The load generator used ${f2(openLoop.cpu.loadGen)} cores.`,
    `- Main-thread CPU per refused image request (its CPU beyond what the phase's text answers cost it alone): (3) ${f1(perRefusal(hammered))} µs, (4) ${f1(perRefusal(openLoop))} µs (goal ≤ 15 µs). The main thread used ${f2(alone.mainThread)} cores alone, ${f2(hammered.mainThread)} in (3), ${f2(openLoop.mainThread)} in (4).`,
    `- Floor: (4)'s flood alone against a bare uWebSockets.js server that refuses every request unread with the same 429, held ${config.shedHoldMs} ms (bench/workers/shed-floor-server.ts): **${f1(floor.usPerRefusal)} µs** of main-thread CPU per refusal (${floor.refusals} refusals, ${f2(floor.cores)} cores); twinlane's (4) is ${f2(perRefusal(openLoop) / floor.usPerRefusal)}× that.`,
    '',
    '| target | measured | goal | |',
    '|---|---:|---:|---|',
    ...targets('(2)', flooded),
    ...targets('(3)', hammered),
    ...targets('(4)', openLoop),
    `| (4): main-thread CPU per refused image request | ${f1(perRefusal(openLoop))} µs | ≤ 15 µs | ${verdict(perRefusal(openLoop) <= 15)} |`,
    '',
  ].join('\n');
  const out = path.join(ROOT, 'bench/results/isolation.md');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, md);
  process.stdout.write(md + `\nwritten to ${path.relative(ROOT, out)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `[bench:isolation] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
