// Observability against the real thing: twinlane (both lanes, a real Redis) gets mixed traffic —
// unique and repeated texts, images, a bad request, a 429, a WebSocket stream — then `promtool check
// metrics` reads its exposition, Debian's Prometheus scrapes it and answers PromQL about it (with
// deploy/prometheus/rules.yml loaded), and the Grafana dashboard's every expression is run there.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as loadYaml } from 'yaml';
import { scenePng } from '../fixtures/images.js';
import {
  startPrometheus,
  parseExposition,
  total,
  type Exposition,
  type TestPrometheus,
} from '../helpers/prometheus.js';
import { startRedis, waitFor, type TestRedis } from '../helpers/redis.js';
import { startServer, TEXT_MODEL, type TestServer } from '../helpers/server.js';
import { openSocket } from '../helpers/ws.js';

const DASHBOARD = path.resolve('deploy/grafana/dashboards/twinlane.json');
const TEXT_QUEUE = 64;
const RATE = 50;
const RATE_BURST = 200;
const KEY = 'k-traffic';
/** One key per round that overspends its budget, so each round shows exactly one 429. */
const GREEDY = Array.from({ length: 4 }, (_, i) => `k-greedy-${i}`);
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

let redis: TestRedis;
let server: TestServer;
let prometheus: TestPrometheus;
let round = 0;

async function scrape(): Promise<{ text: string; exposition: Exposition }> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return { text, exposition: parseExposition(text) };
}

const post = (route: string, body: unknown, key = KEY) =>
  fetch(`${server.url}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth(key) },
    body: JSON.stringify(body),
  });

/** One round of every kind of traffic the metrics must show; each round's texts are new. */
async function traffic(): Promise<void> {
  const r = round++;
  const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
  const texts = Array.from({ length: 8 }, (_, i) => `round ${r} sentence ${i} about observability`);
  await openai.embeddings.create({ model: TEXT_MODEL, input: texts });
  await openai.embeddings.create({ model: TEXT_MODEL, input: texts }); // all cache hits
  expect((await post('/embed/text', { inputs: [`round ${r} native`] })).status).toBe(200);
  const image = await fetch(`${server.url}/embed/image`, {
    method: 'POST',
    headers: { 'content-type': 'image/png', ...auth(KEY) },
    body: await scenePng('circle', r % 20),
  });
  expect(image.status).toBe(200);
  expect((await post('/v1/embeddings', { model: TEXT_MODEL, input: '' })).status).toBe(422);
  // A request larger than the budget is admitted from a full bucket and leaves the client in debt:
  // the next one, of RATE items, needs a second of refill that the first one's compute does not take.
  const greedy = GREEDY[r % GREEDY.length]!;
  const budget = Array.from({ length: RATE_BURST + 1 }, (_, i) => `round ${r} whole budget ${i}`);
  expect((await post('/embed/text', { inputs: budget }, greedy)).status).toBe(200);
  const more = Array.from({ length: RATE }, (_, i) => `round ${r} over budget ${i}`);
  expect((await post('/embed/text', { inputs: more }, greedy)).status).toBe(429);
  const socket = await openSocket(server.url, { headers: auth(KEY) });
  socket.send({ id: `r${r}`, lane: 'text', inputs: [`round ${r} streamed`, texts[0]] });
  expect(await socket.done(`r${r}`)).toMatchObject({ count: 2, failed: 0 });
  await socket.close();
}

beforeAll(async () => {
  redis = await startRedis();
  server = await startServer({
    TWINLANE_REDIS_URL: redis.url,
    TWINLANE_TEXT_MAX_QUEUE: String(TEXT_QUEUE),
    TWINLANE_API_KEYS: [KEY, ...GREEDY].join(','),
    TWINLANE_RATE_LIMIT: String(RATE),
    TWINLANE_RATE_BURST: String(RATE_BURST),
  });
  await traffic();
}, 120_000);

afterAll(async () => {
  await prometheus?.stop();
  await server?.stop();
  await redis?.stop();
});

describe('/metrics after mixed traffic', () => {
  it('passes promtool check metrics', async () => {
    const { text } = await scrape();
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.stdin.end(text);
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(out).toBe('');
    expect(code).toBe(0);
  });

  it('has every family, with its labels and non-zero counts where traffic happened', async () => {
    const { exposition: m } = await scrape();
    const families: Record<string, string> = {
      twinlane_http_requests_total: 'counter',
      twinlane_http_request_duration_seconds: 'histogram',
      twinlane_http_errors_total: 'counter',
      twinlane_lane_queue_seconds: 'histogram',
      twinlane_lane_batch_seconds: 'histogram',
      twinlane_worker_prepare_seconds: 'histogram',
      twinlane_model_run_seconds: 'histogram',
      twinlane_lane_batch_size: 'histogram',
      twinlane_lane_batch_tokens: 'histogram',
      twinlane_lane_batch_padded_tokens: 'histogram',
      twinlane_cache_items_total: 'counter',
      twinlane_lane_queue_depth: 'gauge',
      twinlane_lane_queue_capacity: 'gauge',
      twinlane_lane_in_flight: 'gauge',
      twinlane_lane_rejections_total: 'counter',
      twinlane_rate_limit_decisions_total: 'counter',
      twinlane_cache_errors_total: 'counter',
      twinlane_cache_tier_lookups_total: 'counter',
      twinlane_cache_redis_up: 'gauge',
      twinlane_cache_redis_configured: 'gauge',
      twinlane_cache_breaker_state: 'gauge',
      twinlane_ws_connections: 'gauge',
      twinlane_ws_messages_total: 'counter',
      twinlane_ws_items_total: 'counter',
      twinlane_ws_requests_total: 'counter',
      twinlane_nodejs_eventloop_lag_p99_seconds: 'gauge',
      twinlane_process_cpu_seconds_total: 'counter',
    };
    for (const [name, type] of Object.entries(families)) expect([name, m.types.get(name)]).toEqual([name, type]);

    const route = '/v1/embeddings';
    expect(total(m, 'twinlane_http_requests_total', { route, lane: 'text', status: '200' })).toBeGreaterThanOrEqual(2);
    expect(total(m, 'twinlane_http_requests_total', { route, lane: 'text', status: '422' })).toBeGreaterThanOrEqual(1);
    expect(total(m, 'twinlane_http_requests_total', { route: '/embed/text', lane: 'text', status: '429' })).toBe(round);
    expect(total(m, 'twinlane_http_errors_total', { route: '/embed/text', code: 'rate_limited' })).toBe(round);
    expect(total(m, 'twinlane_rate_limit_decisions_total', { result: 'limited' })).toBe(round);
    expect(total(m, 'twinlane_http_errors_total', { route, code: 'empty_input' })).toBe(round);
    for (const lane of ['text', 'image']) {
      expect(total(m, 'twinlane_http_request_duration_seconds_count', { lane })).toBeGreaterThan(0);
      for (const family of ['lane_queue_seconds', 'lane_batch_seconds', 'lane_batch_size']) {
        expect([lane, family, total(m, `twinlane_${family}_count`, { lane })]).not.toContainEqual(0);
      }
      for (const family of ['worker_prepare_seconds', 'model_run_seconds']) {
        expect(
          total(m, `twinlane_${family}_count`, {
            lane,
            model: lane === 'text' ? TEXT_MODEL : 'twinlane/clip-vision-standin',
          }),
        ).toBeGreaterThan(0);
        expect(total(m, `twinlane_${family}_sum`, { lane })).toBeGreaterThan(0);
      }
      expect(total(m, 'twinlane_cache_items_total', { lane, result: 'computed' })).toBeGreaterThan(0);
      expect(total(m, 'twinlane_lane_queue_capacity', { lane })).toBeGreaterThan(0);
    }
    expect(total(m, 'twinlane_lane_queue_capacity', { lane: 'text' })).toBe(TEXT_QUEUE);
    expect(total(m, 'twinlane_cache_items_total', { lane: 'text', result: 'l1' })).toBeGreaterThanOrEqual(8);
    // The worker's own counts: real tokens never exceed the padded positions the model ran over.
    const realTokens = total(m, 'twinlane_lane_batch_tokens_sum', { lane: 'text' });
    expect(realTokens).toBeGreaterThan(0);
    expect(total(m, 'twinlane_lane_batch_padded_tokens_sum', { lane: 'text' })).toBeGreaterThanOrEqual(realTokens);
    expect(total(m, 'twinlane_cache_tier_lookups_total', { tier: 'redis', result: 'miss' })).toBeGreaterThan(0);
    expect(total(m, 'twinlane_cache_redis_up')).toBe(1);
    expect(total(m, 'twinlane_cache_redis_configured')).toBe(1);
    expect(total(m, 'twinlane_cache_breaker_state')).toBe(0);
    expect(total(m, 'twinlane_ws_messages_total', { direction: 'in', kind: 'text' })).toBeGreaterThan(0);
    expect(total(m, 'twinlane_ws_items_total', { lane: 'text', result: 'computed' })).toBeGreaterThan(0);
    expect(total(m, 'twinlane_ws_items_total', { lane: 'text', result: 'cached' })).toBeGreaterThan(0);
    expect(total(m, 'twinlane_ws_requests_total', { end: 'complete' })).toBe(round);
    expect(total(m, 'twinlane_process_cpu_seconds_total')).toBeGreaterThan(0);
  });
});

describe('a real Prometheus', () => {
  beforeAll(async () => {
    prometheus = await startPrometheus(`127.0.0.1:${server.port}`);
    await waitFor(async () => (await prometheus.query('up{job="twinlane"} == 1')).length === 1, 30_000, 'first scrape');
    // Traffic between scrapes, so rate() over the window sees every kind of answer increase.
    for (let i = 0; i < GREEDY.length - 1; i++) await traffic();
    await new Promise((r) => setTimeout(r, 2_500));
  }, 120_000);

  it('answers PromQL about the traffic: request rate by status, a p99 per lane, recording rules', async () => {
    const byStatus = await prometheus.query('sum by (status) (rate(twinlane_http_requests_total{job="twinlane"}[1m]))');
    const rates = Object.fromEntries(byStatus.map((r) => [r.metric['status'], Number(r.value[1])]));
    expect(rates['200']).toBeGreaterThan(0);
    expect(rates['422']).toBeGreaterThan(0);
    expect(rates['429']).toBeGreaterThan(0);

    const p99 = await prometheus.query(
      'histogram_quantile(0.99, sum by (le, lane) (rate(twinlane_http_request_duration_seconds_bucket{lane=~"text|image"}[1m])))',
    );
    expect(p99.map((r) => r.metric['lane']).sort()).toEqual(['image', 'text']);
    for (const r of p99) {
      const seconds = Number(r.value[1]);
      expect(seconds).toBeGreaterThan(0);
      expect(seconds).toBeLessThanOrEqual(10);
    }

    await waitFor(
      async () => (await prometheus.query('twinlane:http_requests:rate1m{status="200"}')).length > 0,
      15_000,
      'a recording rule to be evaluated',
    );
    const saturation = await prometheus.query('twinlane:lane_queue:saturation');
    expect(saturation.map((r) => r.metric['lane']).sort()).toEqual(['image', 'text']);
    const ratio = await prometheus.query('twinlane:http_429:ratio5m{lane="text"}');
    expect(Number(ratio[0]?.value[1])).toBeGreaterThan(0);
  });

  it('evaluates every recording and alert rule without an error', async () => {
    interface Rule {
      name: string;
      health: string;
      lastError?: string;
      type: string;
    }
    await waitFor(
      async () => {
        const { groups } = await prometheus.get<{ groups: { rules: Rule[] }[] }>('/api/v1/rules');
        return groups.flatMap((g) => g.rules).every((r) => r.health !== 'unknown');
      },
      15_000,
      'every rule evaluated once',
    );
    const { groups } = await prometheus.get<{ groups: { rules: Rule[] }[] }>('/api/v1/rules');
    const rules = groups.flatMap((g) => g.rules);
    expect(rules.length).toBeGreaterThanOrEqual(15);
    expect(rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`)).toEqual([]);
    // The traffic answers one text request in five with a 429: that alert, and only that one, is
    // pending (it fires only after 5 minutes of it).
    const { alerts } = await prometheus.get<{ alerts: { labels: Record<string, string>; state: string }[] }>(
      '/api/v1/alerts',
    );
    expect(alerts.map((a) => [a.labels['alertname'], a.labels['lane'], a.state])).toEqual([
      ['TwinlaneHigh429Ratio', 'text', 'pending'],
    ]);
  });

  it('the Grafana dashboard: its shape, and every expression runs here and names only exported metrics', async () => {
    interface Target {
      refId: string;
      expr: string;
    }
    interface Panel {
      id: number;
      type: string;
      title: string;
      gridPos: { x: number; y: number; w: number; h: number };
      datasource?: { uid: string };
      targets?: Target[];
    }
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      uid: string;
      title: string;
      schemaVersion: number;
      panels: Panel[];
      templating: { list: { name: string }[] };
    };
    expect(dashboard.uid).toBe('twinlane');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['instance']);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels) {
      expect(panel.gridPos.x + panel.gridPos.w).toBeLessThanOrEqual(24);
      if (panel.type === 'row') continue;
      expect(panel.type).toBe('timeseries');
      expect(panel.datasource?.uid).toBe('prometheus');
      expect(panel.targets?.length).toBeGreaterThan(0);
    }
    const titles = dashboard.panels.map((p) => p.title).join('\n');
    for (const wanted of [
      'Text latency',
      'Image latency',
      'Throughput',
      'Cache hit ratio',
      'Queue depth',
      'Rejections',
      'Batch size',
      'Event-loop lag',
    ])
      expect(titles).toContain(wanted);

    const { exposition } = await scrape();
    const exported = new Set(exposition.samples.map((s) => s.name).concat([...exposition.types.keys()]));
    const recorded = new Set(
      (
        loadYaml(readFileSync(path.resolve('deploy/prometheus/rules.yml'), 'utf8')) as {
          groups: { rules: { record?: string; expr: string }[] }[];
        }
      ).groups.flatMap((g) => g.rules.flatMap((r) => (r.record ? [r.record] : []))),
    );
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThanOrEqual(20);
    const unknown: string[] = [];
    for (const expr of exprs) {
      for (const name of expr.match(/\btwinlane[a-z0-9_:]*/g) ?? [])
        if (!exported.has(name) && !recorded.has(name)) unknown.push(name);
      // Grafana's variables, as Grafana would put them in.
      const runnable = expr.replaceAll('$__rate_interval', '1m').replaceAll('$instance', '.*');
      await expect(prometheus.query(runnable), expr).resolves.toBeDefined();
    }
    expect(unknown).toEqual([]);
  });

  it('the alert rules name only metrics the server exports, and pass promtool test rules', async () => {
    const { exposition } = await scrape();
    const exported = new Set(exposition.samples.map((s) => s.name).concat([...exposition.types.keys()]));
    const rules = (
      loadYaml(readFileSync(path.resolve('deploy/prometheus/rules.yml'), 'utf8')) as {
        groups: { rules: { record?: string; expr: string }[] }[];
      }
    ).groups.flatMap((g) => g.rules);
    const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));
    const named = rules.flatMap((r) => r.expr.match(/\btwinlane[a-z0-9_:]*/g) ?? []);
    expect(named.filter((n) => !exported.has(n) && !recorded.has(n))).toEqual([]);
    const { stdout } = await promisify(execFile)('promtool', ['test', 'rules', 'deploy/prometheus/rules.test.yml']);
    expect(stdout).toContain('SUCCESS');
  });
});
