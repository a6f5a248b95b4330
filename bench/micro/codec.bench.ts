// Micro-benchmarks of the cache's per-item CPU work (tinybench): BF16 encode/decode of one 384-dim
// vector (all-MiniLM-L6-v2's dims) and cache key derivation (text, and an image's bytes, which are hashed
// whole on every request). Run: npm run bench:cache.
import { Bench } from 'tinybench';
import { randomBytes } from 'node:crypto';
import { decodeBf16, decodeStoredVector, encodeBf16, imageKey, textKey } from '../../cache/index.js';

const DIMS = 384;

export interface CodecResult {
  readonly name: string;
  readonly nsPerOp: number;
  readonly p50Ns: number;
  readonly opsPerSecond: number;
  readonly samples: number;
}

export async function runCodecBench(timeMs = 400): Promise<CodecResult[]> {
  const vector = new Float32Array(DIMS);
  let sum = 0;
  for (let i = 0; i < DIMS; i++) sum += (vector[i] = Math.sin(i * 12.9898) * 0.7) ** 2;
  for (let i = 0; i < DIMS; i++) vector[i]! /= Math.sqrt(sum);
  const big = encodeBf16(vector, 'big');
  const little = encodeBf16(vector, 'little');
  const shortText = 'how do I reset my password on the mobile app?';
  const longText = 'lorem ipsum dolor sit amet '.repeat(40);
  // About a small JPEG's size; random bytes, since the hash's cost depends only on the length.
  const image = randomBytes(100 * 1024);
  let sink = 0;

  const bench = new Bench({ name: 'cache codec', time: timeMs, warmupTime: 100 });
  bench
    .add('encodeBf16 384 dims, big-endian (Redis write)', () => {
      sink += encodeBf16(vector, 'big').length;
    })
    .add('encodeBf16 384 dims, little-endian (HTTP answer)', () => {
      sink += encodeBf16(vector, 'little').length;
    })
    .add('decodeStoredVector 384 dims (Redis hit: checks + decode)', () => {
      const r = decodeStoredVector(big, DIMS);
      if (r.ok) sink += r.vector.length;
    })
    .add('decodeBf16 384 dims, big-endian', () => {
      sink += decodeBf16(big, 'big').length;
    })
    .add('decodeBf16 384 dims, little-endian', () => {
      sink += decodeBf16(little, 'little').length;
    })
    .add(`textKey, ${shortText.length}-char text`, () => {
      sink += textKey('twinlane', 'sentence-transformers/all-MiniLM-L6-v2', true, shortText).length;
    })
    .add(`textKey, ${longText.length}-char text`, () => {
      sink += textKey('twinlane', 'sentence-transformers/all-MiniLM-L6-v2', true, longText).length;
    })
    .add(`imageKey, ${image.length / 1024} KiB image`, () => {
      sink += imageKey('twinlane', 'Xenova/clip-vit-base-patch32', true, image).length;
    });
  await bench.run();
  if (sink === 0) throw new Error('nothing ran');
  return bench.tasks.map((task) => {
    const r = task.result;
    if (r.state !== 'completed')
      throw new Error(`${task.name}: ${r.state}${r.state === 'errored' ? `: ${r.error.message}` : ''}`);
    return {
      name: task.name,
      nsPerOp: r.latency.mean * 1e6,
      p50Ns: r.latency.p50 * 1e6,
      opsPerSecond: r.throughput.mean,
      samples: r.latency.samplesCount,
    };
  });
}

export function formatCodec(results: readonly CodecResult[]): string {
  const rows = [
    ['task', 'mean ns/op', 'p50 ns/op', 'ops/s'],
    ...results.map((r) => [
      r.name,
      r.nsPerOp.toFixed(0),
      r.p50Ns.toFixed(0),
      Math.round(r.opsPerSecond).toLocaleString('en-US'),
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows
    .map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '))
    .join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(`cache codec micro-benchmarks (node ${process.version})\n`);
  console.log(formatCodec(await runCodecBench()));
}
