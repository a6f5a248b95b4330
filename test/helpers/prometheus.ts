// Debian's real Prometheus for tests: started on a free port with its own data folder, scraping a
// twinlane on 127.0.0.1 every second and evaluating deploy/prometheus/rules.yml; queried through its
// HTTP API. Also a reader for the text exposition format, so tests can find series in /metrics.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from './redis.js';

export const RULES = path.resolve('deploy/prometheus/rules.yml');

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Exposition {
  /** Family name → its TYPE (counter, gauge, histogram, summary). */
  readonly types: ReadonlyMap<string, string>;
  readonly samples: readonly Sample[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Reads Prometheus's text format 0.0.4 as prom-client writes it (no timestamps, one sample per line). */
export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      types.set(name!, type!);
      continue;
    }
    const match = SAMPLE.exec(line);
    if (!match || line.startsWith('#')) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL)) labels[key!] = value!.replace(/\\(.)/g, '$1');
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return { types, samples };
}

/** The sum of the samples named `name` whose labels include `labels`. */
export function total(exposition: Exposition, name: string, labels: Record<string, string> = {}): number {
  return exposition.samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + s.value, 0);
}

export interface QueryResult {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

export interface TestPrometheus {
  readonly url: string;
  /** An instant query; throws with Prometheus's own error when the expression does not parse or fails. */
  query(expr: string): Promise<QueryResult[]>;
  get<T>(apiPath: string): Promise<T>;
  stop(): Promise<void>;
}

export async function startPrometheus(target: string): Promise<TestPrometheus> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'twinlane-prometheus-'));
  const config = path.join(dir, 'prometheus.yml');
  await writeFile(
    config,
    [
      'global: { scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s }',
      `rule_files: ['${RULES}']`,
      'scrape_configs:',
      '  - job_name: twinlane',
      `    static_configs: [{ targets: ['${target}'] }]`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  const get = async <T>(apiPath: string): Promise<T> => {
    const res = await fetch(`${url}${apiPath}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`Prometheus ${apiPath}: ${body.error ?? res.status}`);
    return body.data;
  };
  const query = async (expr: string) =>
    (await get<{ result: QueryResult[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result;
  await waitFor(
    async () => (await fetch(`${url}/-/ready`).catch(() => null))?.status === 200,
    30_000,
    `Prometheus ready (${log.slice(-500)})`,
  );
  return {
    url,
    query,
    get,
    async stop() {
      if (child.exitCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
