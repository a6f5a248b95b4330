// A real HAProxy (Debian's package) in front of twinlane instances on 127.0.0.1, configured from the
// shipped deploy/haproxy.cfg: its defaults and backend options (health checks on /ready, retries,
// redispatch) are used as they are; only the listen address, the stats socket and the server list
// (compose's DNS-based server-template) are replaced.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './redis.js';

export interface Balancer {
  readonly url: string;
  /** `show stat` rows of the backend's servers, by server name. */
  stats(): Promise<Map<string, ServerStats>>;
  output(): string;
  stop(): Promise<void>;
}

export interface ServerStats {
  readonly status: string;
  /** The last health check's status and detail. */
  readonly check: string;
  /** Connections open to the server right now (requests in flight on it). */
  readonly current: number;
  /** Requests that HAProxy retried or redispatched away from this server. */
  readonly retries: number;
  readonly redispatches: number;
  readonly responses: number;
}

const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((p) => existsSync(p)) ?? 'haproxy';

/** deploy/haproxy.cfg with 127.0.0.1 servers `name → port` and the frontend on `listenPort`. */
function balancerConfig(servers: Readonly<Record<string, number>>, listenPort: number, statsSocket: string): string {
  const shipped = readFileSync('deploy/haproxy.cfg', 'utf8');
  const lines = Object.entries(servers).map(([name, port]) => `    server ${name} 127.0.0.1:${port} check`);
  return shipped
    .replace(/# BEGIN servers[\s\S]*# END servers/, lines.join('\n'))
    .replace(/\nresolvers docker[\s\S]*$/, '\n')
    .replace(/bind :8080/, `bind 127.0.0.1:${listenPort}`)
    .replace(/stats socket \S+/, `stats socket ${statsSocket}`);
}

function query(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = '';
    const socket = net.connect(socketPath, () => socket.end(`${command}\n`));
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

function parseStats(csv: string): Map<string, ServerStats> {
  const [header, ...rows] = csv.trim().split('\n');
  const columns = header!.replace(/^# /, '').split(',');
  const at = (row: string[], name: string) => row[columns.indexOf(name)] ?? '';
  const servers = new Map<string, ServerStats>();
  for (const row of rows.map((r) => r.split(','))) {
    const name = at(row, 'svname');
    if (at(row, 'pxname') !== 'twinlane' || name === 'BACKEND') continue;
    servers.set(name, {
      check: `${at(row, 'check_status')} ${at(row, 'last_chk')}`,
      status: at(row, 'status'),
      current: Number(at(row, 'scur')),
      retries: Number(at(row, 'wretr')),
      redispatches: Number(at(row, 'wredis')),
      responses: Number(at(row, 'hrsp_2xx')),
    });
  }
  return servers;
}

export async function startBalancer(servers: Readonly<Record<string, number>>): Promise<Balancer> {
  const port = await freePort();
  const dir = os.tmpdir();
  const statsSocket = path.join(dir, `twinlane-haproxy-${process.pid}-${port}.sock`);
  const configFile = path.join(dir, `twinlane-haproxy-${process.pid}-${port}.cfg`);
  writeFileSync(configFile, balancerConfig(servers, port, statsSocket));
  const child: ChildProcess = spawn(HAPROXY, ['-db', '-f', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const stats = async () => parseStats(await query(statsSocket, 'show stat'));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`haproxy exited with ${child.exitCode}:\n${output}`);
    // Servers start as UP before their first check ("INI"): wait for a real passing check.
    const up = await stats().catch(() => null);
    if (up && [...up.values()].some((s) => s.status === 'UP' && s.check.includes('L7OK'))) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    output: () => output,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}
