// Runs Debian's wrk (a native, well-kept HTTP load generator: a few µs of CPU per request, where a
// JavaScript generator on these 2 cores takes CPU from the server it measures) with
// bench/workers/wrk-embed.lua, and reads the one JSON line its done() prints.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './children.js';

export interface WrkResult {
  readonly requests: number;
  readonly durationUs: number;
  readonly meanUs: number;
  readonly p50Us: number;
  readonly p95Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
  readonly status429: number;
  readonly statusOther: number;
  readonly connectErrors: number;
  readonly readErrors: number;
  readonly writeErrors: number;
  readonly timeouts: number;
  /** Unique texts that needed a counter because the sentence file ran dry (still unique). */
  readonly wrapped: number;
  /** How many unique texts the run may have used from its offset on (the busiest thread's count × threads). */
  readonly sent: number;
  /** wrk's own CPU (all its threads) over the run. */
  readonly cpuSeconds: number;
}

export interface WrkRun {
  readonly port: number;
  readonly concurrency: number;
  readonly seconds: number;
  readonly lane: 'text' | 'image' | 'mixed';
  readonly unique: boolean;
  readonly model: string;
  /** A file of sentences, one per line, and a file listing JPEG paths. */
  readonly textsFile: string;
  readonly imagesFile: string;
  /** How many of the texts/images the repeated form cycles. */
  readonly repeated: number;
  /** Where unique texts start in the file (a run never reuses another's). */
  readonly offset: number;
  readonly salt: string;
  /** Where texts are posted (default /v1/embeddings). */
  readonly textPath?: string;
  /** wrk threads (default one per core, at most one per connection). */
  readonly threads?: number;
  /** false: answers are not handed to Lua (no 429s apart, see wrk-embed.lua); for the cheapest generator. */
  readonly statuses?: boolean;
}

const SCRIPT = path.join(ROOT, 'bench/workers/wrk-embed.lua');

export async function runWrk(run: WrkRun): Promise<WrkResult> {
  // Two threads (one per core) once there are two connections to share.
  const threads = run.threads ?? Math.min(2, run.concurrency);
  const { stdout } = await promisify(execFile)(
    'wrk',
    [
      `-t${threads}`,
      `-c${run.concurrency}`,
      `-d${run.seconds}s`,
      '--timeout',
      '60s',
      '-s',
      SCRIPT,
      `http://127.0.0.1:${run.port}`,
    ],
    {
      env: {
        ...process.env,
        WRK_LANE: run.lane,
        WRK_UNIQUE: run.unique ? '1' : '0',
        WRK_MODEL: run.model,
        WRK_TEXTS: run.textsFile,
        WRK_IMAGES: run.imagesFile,
        WRK_REPEATED: String(run.repeated),
        WRK_SALT: run.salt,
        WRK_OFFSET: String(run.offset),
        WRK_THREADS: String(threads),
        ...(run.textPath ? { WRK_TEXT_PATH: run.textPath } : {}),
        ...(run.statuses === false ? { WRK_STATUSES: '0' } : {}),
      },
      maxBuffer: 1 << 20,
    },
  );
  const line = stdout.split('\n').find((l) => l.startsWith('{"requests"'));
  if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
  return JSON.parse(line) as WrkResult;
}
