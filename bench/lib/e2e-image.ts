// The image half of `npm run bench:e2e`:
//   (e) the machine's raw image ceiling: sharp decode + preprocess of JPEG bytes + ONNX Runtime, the
//       best of every thread layout that fits the cores and every batch size the lane may form,
//   (f) the server (both lanes on, as in production) under closed-loop clients each sending a
//       distinct JPEG as the raw body of every request, so every request is computed,
//   (g) sharp preprocessing alone, per image, on one thread.
import os from 'node:os';
import { loadConfig } from '../../src/config.js';
import { layoutsFor, type Layout } from './ceiling.js';
import { resolveModel } from '../../src/models.js';
import { startChild, stopChild, waitReady, type Child } from './children.js';
import { disturbed } from './cpu.js';
import {
  CEILING_WARMUP_RUNS,
  measureImageCeiling,
  measurePreprocessing,
  type ImageCeilingOptions,
  type ImageCeilingRow,
} from './image-ceiling.js';
import { JPEG_QUALITY, JPEG_SIZES, makeJpegs, withJpegComment, type Jpeg } from '../fixtures/jpegs.js';
import { histogramRows, laneActivity, type LaneActivity } from './lane-activity.js';
import { percentiles } from './load.js';
import {
  CEILING_MS,
  cpuCells,
  errorNote,
  f0,
  f1,
  f2,
  loadPhase,
  MEASURE_MS,
  pct,
  phaseRow,
  progress,
  resultsHeader,
  WARMUP_MS,
  type Phase,
} from './phase.js';
import { scrape } from './scrape.js';
import {
  pairedRatio,
  pairedSection,
  PAIRED_ROUNDS,
  PAIRED_WARMUP_MS,
  PAIRED_WINDOW_MS,
  serverWindow,
  type Paired,
} from './paired.js';

export const IMAGE_MODEL = 'twinlane/clip-vision-standin';
const CONCURRENCY = 32;
const BATCH_SIZES = [1, 2, 4, 8];
/** (g): images per size class timed, after a few untimed ones (of all sizes). */
const PREPROCESS_PER_SIZE = 50;
const PREPROCESS_WARMUP = 4;
/** (f)'s pool holds this many times the images the ceiling's rate would need for the phase. */
const SERVER_POOL_MARGIN = 1.3;
const IMAGE_TARGET = 0.85;

/** Hands out pictures from disjoint index ranges, so no picture is sent twice in the run. */
class PictureSupply {
  #next = 0;
  async take(count: number): Promise<Jpeg[]> {
    const start = this.#next;
    this.#next += count;
    return makeJpegs(start, count);
  }
  get used(): number {
    return this.#next;
  }
}

interface SizeCost {
  readonly label: string;
  readonly images: number;
  readonly meanBytes: number;
  readonly meanMicros: number;
  readonly p50Micros: number;
  readonly p95Micros: number;
}

function sizeCost(label: string, jpegs: readonly Jpeg[], micros: readonly number[]): SizeCost {
  const stats = percentiles(Float64Array.from(micros));
  return {
    label,
    images: micros.length,
    meanBytes: jpegs.reduce((n, j) => n + j.bytes.length, 0) / jpegs.length,
    meanMicros: stats.mean,
    p50Micros: stats.p50,
    p95Micros: stats.p95,
  };
}

type LayoutRow = ImageCeilingRow & Layout;
const best = (rows: readonly LayoutRow[]) => rows.reduce((a, b) => (b.imagesPerSecond > a.imagesPerSecond ? b : a));
const layoutName = (l: Layout) => `${l.sessions} × ${l.intraOpThreads}`;

export async function imageBench(modelsDir: string, baseEnv: NodeJS.ProcessEnv): Promise<string[]> {
  const serverEnv: NodeJS.ProcessEnv = { ...baseEnv, TWINLANE_IMAGE_MODEL: IMAGE_MODEL };
  // The same derivation the server makes from the same environment, so (e) gets the lane's budget.
  const config = loadConfig([], serverEnv);
  const model = await resolveModel(IMAGE_MODEL, 'image', { modelsDir, hubUrl: config.hubUrl, offline: true });
  if (model.kind !== 'image') throw new Error(`${IMAGE_MODEL} did not resolve as an image model`);
  const worker = {
    onnxPath: model.onnxPath,
    intraOpThreads: config.imageIntraOpThreads,
    preprocess: model.preprocess,
    maxPixels: config.maxImagePixels,
  };
  const pictures = new PictureSupply();

  progress(
    `(g) sharp preprocessing alone: ${PREPROCESS_PER_SIZE} images per size class on one thread (sharp.concurrency ${config.imageIntraOpThreads})`,
  );
  const costPool = await pictures.take(PREPROCESS_WARMUP + PREPROCESS_PER_SIZE * JPEG_SIZES.length);
  const costRun = await measurePreprocessing(
    worker,
    costPool.map((j) => j.bytes),
    PREPROCESS_WARMUP,
  );
  const timedPool = costPool.slice(PREPROCESS_WARMUP);
  const costs = JPEG_SIZES.map(([w, h]) => {
    const indices = timedPool.flatMap((j, i) => (j.width === w && j.height === h ? [i] : []));
    return sizeCost(
      `${w}×${h}`,
      indices.map((i) => timedPool[i]!),
      indices.map((i) => costRun.micros[i]!),
    );
  });
  const allCost = sizeCost('all (equal mix)', timedPool, costRun.micros);
  progress(
    `(g) ${f0(allCost.meanMicros)} µs per image on average (${costs.map((c) => `${c.label} ${f0(c.meanMicros)}`).join(', ')})`,
  );

  const batchSizes = BATCH_SIZES.filter((b) => b <= config.imageMaxBatchItems);
  const ceilingOptions = (layout: Layout, sizes: readonly number[]): ImageCeilingOptions => ({
    worker: { ...worker, intraOpThreads: layout.intraOpThreads },
    sessions: layout.sessions,
    batchSizes: sizes,
    minMs: CEILING_MS,
    nextImages: async (count) => (await pictures.take(count)).map((j) => j.bytes),
  });
  const ceiling: LayoutRow[] = [];
  for (const layout of layoutsFor(os.availableParallelism())) {
    progress(
      `(e) raw ceiling: ${layoutName(layout)} (sessions × intra-op threads), decode + preprocess + model, batches ${batchSizes.join('/')}`,
    );
    for (const row of await measureImageCeiling(ceilingOptions(layout, batchSizes))) {
      progress(
        `(e) ${layoutName(layout)} batch ${row.batchSize}: ${row.imagesPerSecond.toFixed(1)} images/s, ${pct(row.preprocessShare)} in preprocessing (other ${row.cpu.other.toFixed(2)} cores, steal ${row.cpu.steal.toFixed(2)})`,
      );
      ceiling.push({ ...row, ...layout });
    }
  }
  const bestRow = best(ceiling);

  const poolSize =
    Math.ceil(
      bestRow.imagesPerSecond *
        ((WARMUP_MS + MEASURE_MS + PAIRED_ROUNDS * (PAIRED_WARMUP_MS + PAIRED_WINDOW_MS)) / 1000) *
        SERVER_POOL_MARGIN,
    ) + CONCURRENCY;
  progress(`(f) generating ${poolSize} distinct JPEGs`);
  const pool = await pictures.take(poolSize);
  let sent = 0;
  let recycled = 0;
  // Past the pool's end a picture comes back with a comment that makes its bytes (and cache key) new;
  // counted and reported, because its pixels are not.
  const nextJpeg = () => {
    const jpeg = pool[sent % pool.length]!.bytes;
    if (sent++ < pool.length) return jpeg;
    recycled++;
    return withJpegComment(jpeg, `twinlane bench ${sent}`);
  };

  let server: Child | undefined;
  let f: Phase;
  let activity: LaneActivity;
  let paired: Paired;
  try {
    server = await startChild('dist/src/main.js', serverEnv);
    await waitReady(server.port);
    const before = await scrape(server.port);
    f = await loadPhase('(f) server, distinct JPEGs', server, {
      path: '/embed/image',
      concurrency: CONCURRENCY,
      body: nextJpeg,
      contentType: 'image/jpeg',
      sampleHeader: 'x-cache-hits',
    });
    activity = laneActivity(before, await scrape(server.port), 'image');
    paired = await pairedRatio(
      '(f)/(e) paired',
      async () => {
        const [row] = await measureImageCeiling({
          ...ceilingOptions(bestRow, [bestRow.batchSize]),
          minMs: PAIRED_WINDOW_MS,
        });
        if (!row) throw new Error('a paired ceiling window returned nothing');
        return row.imagesPerSecond;
      },
      serverWindow(server, {
        path: '/embed/image',
        concurrency: CONCURRENCY,
        body: nextJpeg,
        contentType: 'image/jpeg',
      }),
    );
  } finally {
    await stopChild(server);
  }

  progress(`(e) re-check of ${layoutName(bestRow)} at batch ${bestRow.batchSize}`);
  const [recheckRow] = await measureImageCeiling(ceilingOptions(bestRow, [bestRow.batchSize]));
  if (!recheckRow) throw new Error('image ceiling re-check returned nothing');
  const recheck: LayoutRow = { ...recheckRow, sessions: bestRow.sessions, intraOpThreads: bestRow.intraOpThreads };

  const eRow = recheck.imagesPerSecond > bestRow.imagesPerSecond ? recheck : bestRow;
  const e = eRow.imagesPerSecond;
  const ratio = f.load.throughput / e;
  // An absent header counts as no hit here; the /metrics counters below still catch any.
  const cacheHits = Object.entries(f.load.headerValues).reduce(
    (n, [hits, count]) => n + (Number(hits) || 0) * count,
    0,
  );
  const servedFromCache =
    (activity.cacheItems['l1'] ?? 0) + (activity.cacheItems['redis'] ?? 0) + (activity.cacheItems['joined'] ?? 0);
  // Per image on one session: what the ceiling spends on one image, against preprocessing alone.
  const ceilingMicrosPerImage = (eRow.sessions * 1e6) / e;
  const sizeMix = JPEG_SIZES.map(([w, h]) => `${w}×${h}`).join(', ');
  const meanBytes = pool.reduce((n, j) => n + j.bytes.length, 0) / pool.length;

  return [
    '## Image lane',
    '',
    `- Model: \`${IMAGE_MODEL}\`; the server runs with both lanes on, as in production`,
    `- Thread budget (server default from \`loadConfig\` with both lanes on): image lane ${config.imageThreads} worker(s) × ${config.imageIntraOpThreads} intra-op thread(s) at nice ${config.imageNice}, max batch ${config.imageMaxBatchItems} images, max queue ${config.imageMaxQueue}; text lane ${config.textThreads} × ${config.textIntraOpThreads} (idle here)`,
    `- Pictures: distinct synthetic JPEGs (gradient, waves, 3–8 shapes, grain; bench/fixtures/jpegs.ts), sizes ${sizeMix} in equal shares, quality ${JPEG_QUALITY}, ${f1(meanBytes / 1024)} KiB on average; all generated before the timed windows, and no picture is used twice in the run (${pictures.used} made)${recycled > 0 ? `; **(f) ran past its pool: ${recycled} requests re-sent a picture with a new JPEG comment (new bytes, same pixels)**` : ''}`,
    `- Load: ${CONCURRENCY} closed-loop keep-alive clients, ${WARMUP_MS / 1000} s warm-up not recorded + ${MEASURE_MS / 1000} s measured; every request \`POST /embed/image\` with the JPEG itself as the body (\`Content-Type: image/jpeg\`), answered as JSON (${f.load.lastBodyBytes} bytes); the JSON/base64 form was not measured`,
    '',
    '### Results',
    '',
    ...resultsHeader('images'),
    `| (e) the machine's raw ceiling (decode + preprocess + ONNX Runtime): ${layoutName(eRow)}, batch ${eRow.batchSize} | ${f0(e)} | — | — | — | — | — | ${cpuCells(eRow.cpu, e, false)} |`,
    phaseRow(f),
    '',
    `(f) cache: \`x-cache-hits\` of the measured answers ${JSON.stringify(f.load.headerValues)} (${cacheHits} hits); image-lane items by cache result from /metrics ${JSON.stringify(activity.cacheItems)} (warm-up included)${cacheHits + servedFromCache === 0 ? ', so every image was computed' : ' — **some answers came from the cache**'}.`,
    '',
    errorNote(f) ?? '(f) had no non-2xx answer and no socket error.',
    '',
    '| ratio | value | target | |',
    '|---|---:|---:|---|',
    `| f/e: server, distinct JPEGs ÷ the machine's raw image ceiling, in the same minutes (paired windows below) | ${f2(paired.ratio)} | ≥ ${IMAGE_TARGET} | ${paired.errors > 0 ? 'void (errors)' : paired.ratio >= IMAGE_TARGET ? 'met' : 'not met'} |`,
    `| f/e against (e) as tabled: the sweep's best row or its re-check, minutes apart from (f) | ${f2(ratio)} | ≥ ${IMAGE_TARGET} | ${ratio >= IMAGE_TARGET ? 'met' : 'not met'} |`,
    '',
    `- The winning layout: ${layoutName(eRow)} (sessions × intra-op threads) at batch ${eRow.batchSize}; the server's image lane is ${config.imageThreads} × ${config.imageIntraOpThreads}.`,
    '',
    "### (e) The machine's raw image ceiling, by thread layout and batch size",
    '',
    `Every layout of sessions × intra-op threads that fits the machine's ${os.availableParallelism()} cores, each session on its own worker thread, made by the lane's own \`createSession\` (inter-op 1, sequential, graph optimisation "all", no spinning) and the lane's own preprocessor (\`createPreprocessor\` from lanes/image-preprocess.ts, sharp.concurrency = the layout's intra-op threads, sharp cache off), run at normal priority (the lane runs at nice ${config.imageNice}, which only matters when something else wants the cores). A run decodes and preprocesses its batch's JPEGs into a fresh tensor, then runs the model; every run gets new pictures. ${CEILING_WARMUP_RUNS} warm-up runs, then ≥ ${CEILING_MS / 1000} s and ≥ 3 runs per batch size, unless the pool ran out (marked). The best row is measured again after (f) (re-check); (e) is the higher of the two.`,
    '',
    '| layout | batch | images/s | ms per run | decode + preprocess share | timed s | session threads (cores) | other programs (cores) | steal (cores) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...[...ceiling, recheck].map(
      (r, i) =>
        `| ${layoutName(r)} | ${r.batchSize}${i === ceiling.length ? ' (re-check)' : r === bestRow ? ' (best)' : ''} | ${f1(r.imagesPerSecond)} | ${f1(r.msPerRun)} | ${pct(r.preprocessShare)} | ${f1(r.seconds)}${r.exhausted ? ' (pool ran out)' : ''} | ${f2(r.cpu.target)} | ${f2(r.cpu.other)} | ${f2(r.cpu.steal)}${disturbed(r.cpu) ? ' ⚠' : ''} |`,
    ),
    '',
    '### (f) and (e) in the same minutes',
    '',
    ...pairedSection(paired, '(f)', `${layoutName(bestRow)} at batch ${bestRow.batchSize}, new pictures`, 'images'),
    '',
    '### (g) sharp preprocessing alone, per image',
    '',
    `The lane's preprocessor (\`preprocessor.into()\`: header check, sharp decode, EXIF rotate, alpha composited onto white, sRGB, resize ${JSON.stringify(model.preprocess.resize)} (${model.preprocess.kernel}) + centre crop ${JSON.stringify(model.preprocess.crop)}, normalise into NCHW float32) on one worker thread (sharp.concurrency ${config.imageIntraOpThreads}, cache off), one image at a time, ${PREPROCESS_PER_SIZE} distinct JPEGs per size after ${PREPROCESS_WARMUP} untimed ones; other programs ${f2(costRun.cpu.other)} cores, steal ${f2(costRun.cpu.steal)}${disturbed(costRun.cpu) ? ' ⚠' : ''}.`,
    '',
    '| JPEG size | images | mean KiB | mean µs | p50 µs | p95 µs | images/s on one thread |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...[...costs, allCost].map(
      (c) =>
        `| ${c.label} | ${c.images} | ${f1(c.meanBytes / 1024)} | ${f0(c.meanMicros)} | ${f0(c.p50Micros)} | ${f0(c.p95Micros)} | ${f0(1e6 / c.meanMicros)} |`,
    ),
    '',
    `- Share of the ceiling: (e) spends ${f0(ceilingMicrosPerImage)} µs of a session's time per image (${config.imageThreads} session(s) ÷ ${f0(e)} images/s); preprocessing alone takes ${f0(allCost.meanMicros)} µs of it on average, ${pct(allCost.meanMicros / ceilingMicrosPerImage)}. Timed inside the ceiling's own runs at batch ${eRow.batchSize}, decode + preprocess was ${pct(eRow.preprocessShare)} of the session's time.`,
    '',
    '### Image lane during (f), from GET /metrics',
    '',
    `${activity.batches} batches, mean ${f1(activity.meanBatch)} images per batch, mean ${f1(activity.meanInferenceMs)} ms in the worker per batch (decode + preprocess + model; compare the ceiling's ms per run at that batch size), mean ${f1(activity.meanQueueMs)} ms longest queue wait per batch (the load generator's warm-up included).`,
    '',
    ...histogramRows(activity),
    '',
  ];
}
