// The deployment files in deploy/, checked without Docker or a cluster (neither runs here): every
// YAML file parses, compose.yaml validates against the Compose Specification's JSON schema, the
// Kubernetes manifests against the API's schemas (kubernetes-models), HAProxy and Prometheus check
// their own configs, and the files agree with each other and with the server: ports, probe paths,
// option names, drain timing. No server is started.
//
// compose-spec/compose-spec.json is the schema Docker Compose itself validates with, copied
// unchanged from compose-spec/compose-go v2.13.0 (commit 0670a1c375c19defea19147bd82eb126a7c33b29,
// schema/compose-spec.json; Apache-2.0, LICENSE and NOTICE beside it).
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Service } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { OPTIONS } from '../../src/config.js';

const run = promisify(execFile);
const DEPLOY = 'deploy';
const read = (file: string): string => readFileSync(path.join(DEPLOY, file), 'utf8');

/** Every file under deploy/, relative to it. */
function deployFiles(dir = ''): string[] {
  return readdirSync(path.join(DEPLOY, dir), { withFileTypes: true }).flatMap((entry) => {
    const relative = path.join(dir, entry.name);
    return entry.isDirectory() ? deployFiles(relative) : [relative];
  });
}

const yamlFiles = (): string[] => deployFiles().filter((f) => /\.ya?ml$/.test(f));

// ---- small typed views of parsed YAML --------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The value at `keys` below `value`, failing the test (naming the path) if an object is missing on the way. */
function at(value: Json | undefined, ...keys: (string | number)[]): Json {
  let current = value;
  for (const [i, key] of keys.entries()) {
    const next =
      typeof key === 'number'
        ? Array.isArray(current)
          ? current[key]
          : undefined
        : isObject(current)
          ? current[key]
          : undefined;
    if (next === undefined) throw new Error(`missing ${keys.slice(0, i + 1).join('.')}`);
    current = next;
  }
  return current as Json;
}
const obj = (value: Json | undefined, ...keys: (string | number)[]): JsonObject => {
  const v = at(value, ...keys);
  if (!isObject(v)) throw new Error(`${keys.join('.')} is not an object`);
  return v;
};
const list = (value: Json | undefined, ...keys: (string | number)[]): Json[] => {
  const v = at(value, ...keys);
  if (!Array.isArray(v)) throw new Error(`${keys.join('.')} is not a list`);
  return v;
};
const str = (value: Json | undefined, ...keys: (string | number)[]): string => String(at(value, ...keys));
const num = (value: Json | undefined, ...keys: (string | number)[]): number => Number(at(value, ...keys));

const loadYaml = (file: string): JsonObject => {
  const doc: unknown = parse(read(file));
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error(`${file} is not a YAML mapping`);
  return doc as JsonObject;
};

/** Compose durations: 30s, 1m30s, 500ms, 1h. */
function durationMs(text: string): number {
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|us|h|m|s)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw new Error(`not a duration: ${text}`);
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 };
  return parts.reduce((sum, [, n, u]) => sum + Number(n) * (unit[u as string] ?? NaN), 0);
}

/** A Kubernetes container's env list, or a compose service's environment (map or KEY=VALUE list), as a map. */
function envMap(env: Json): Map<string, string> {
  if (Array.isArray(env)) {
    return new Map(
      env.map((e) =>
        isObject(e) ? [str(e, 'name'), str(e, 'value')] : (String(e).split(/=(.*)/s).slice(0, 2) as [string, string]),
      ),
    );
  }
  if (isObject(env)) return new Map(Object.entries(env).map(([k, v]) => [k, String(v)]));
  throw new Error('environment is neither a list nor a map');
}

// ---- the Dockerfile ---------------------------------------------------------------------------

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** Instructions with continuation lines joined and comment lines dropped (also inside continuations). */
function dockerfile(): Instruction[] {
  const instructions: Instruction[] = [];
  let pending = '';
  for (const line of read('Dockerfile').split('\n')) {
    if (/^\s*#/.test(line) || (pending === '' && line.trim() === '')) continue;
    const continued = /\\\s*$/.test(line);
    pending += (pending === '' ? '' : ' ') + line.replace(/\\\s*$/, '').trim();
    if (continued) continue;
    const match = /^(\w+)\s+([\s\S]*)$/.exec(pending);
    if (match) instructions.push({ keyword: (match[1] as string).toUpperCase(), args: match[2] as string });
    pending = '';
  }
  return instructions;
}

const instructionsOf = (keyword: string): Instruction[] => dockerfile().filter((i) => i.keyword === keyword);

/** ENV's KEY=VALUE pairs (the form this Dockerfile uses), from every ENV instruction. */
function dockerEnv(): Map<string, string> {
  const env = new Map<string, string>();
  for (const { args } of instructionsOf('ENV')) {
    for (const [, key, value] of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g))
      env.set(key as string, (value as string).replace(/^"|"$/g, ''));
  }
  return env;
}

/** Whether deploy/Dockerfile.dockerignore leaves a root-relative path (or a folder above it) out of the
 * context. Only the forms that file uses: no `!` exceptions, `*` within a name, `**` across folders. */
function dockerignored(): (file: string) => boolean {
  const patterns = read('Dockerfile.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  expect(patterns.filter((p) => p.startsWith('!'))).toEqual([]);
  const escape = (text: string) => text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  const toRegex = (pattern: string) =>
    pattern
      .replace(/^\/+|\/+$/g, '')
      .split('**')
      .map((part) => part.split('*').map(escape).join('[^/]*'))
      .join('.*');
  const regexes = patterns.map((p) => new RegExp(`^${toRegex(p)}(/|$)`));
  return (file) => regexes.some((r) => r.test(file));
}

/** GET routes of server/index.ts's routeTable, read from its source text. */
function serverGetRoutes(): Set<string> {
  const source = readFileSync('server/index.ts', 'utf8');
  // GET routes are written `{ path: '/x', method: 'get', … }` or `operator('/x', …)` in the route table.
  const routes = source.matchAll(/\{ path: '([^']+)', method: 'get'|operator\('([^']+)'/g);
  return new Set([...routes].map((m) => (m[1] ?? m[2]) as string));
}

const compose = () => loadYaml('compose.yaml');
const composeService = (name: string) => obj(compose(), 'services', name);
const k8s = (file: string) => loadYaml(path.join('k8s', file));
const podSpec = () => obj(k8s('deployment.yaml'), 'spec', 'template', 'spec');
const container = () => obj(list(podSpec(), 'containers'), 0);
const drainMs = (env: Map<string, string>) =>
  Number(env.get('TWINLANE_DRAIN_DELAY_MS') ?? NaN) + Number(env.get('TWINLANE_SHUTDOWN_TIMEOUT_MS') ?? NaN);

const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((p) => existsSync(p)) ?? 'haproxy';

describe('deployment files (deploy/)', () => {
  it('every YAML file under deploy/ parses', () => {
    const files = yamlFiles();
    expect(files).toEqual(
      expect.arrayContaining([
        'compose.yaml',
        'prometheus/prometheus.yml',
        'prometheus/rules.yml',
        'prometheus/rules.test.yml',
        'k8s/deployment.yaml',
        'k8s/service.yaml',
        'k8s/hpa.yaml',
        'k8s/pdb.yaml',
        'k8s/kustomization.yaml',
        'grafana/provisioning/datasources/prometheus.yaml',
        'grafana/provisioning/dashboards/twinlane.yaml',
      ]),
    );
    for (const file of files) {
      const docs = parseAllDocuments(read(file));
      const errors = (Array.isArray(docs) ? docs : [docs]).flatMap((d) =>
        [...d.errors, ...d.warnings].map((e) => e.message),
      );
      expect(errors, file).toEqual([]);
    }
  });

  it('compose.yaml validates against the Compose Specification JSON schema', () => {
    const schema = JSON.parse(readFileSync('test/deploy/compose-spec/compose-spec.json', 'utf8')) as Record<
      string,
      unknown
    >;
    // Strict mode (unknown keywords in the schema are errors), less strictTypes, which only lints a
    // schema's style and warns about the upstream schema's union types and untyped oneOf branches.
    const ajv = new Ajv2020({ allErrors: true, strictTypes: false });
    const validate = ajv.compile(schema);
    const valid = validate(compose());
    expect(validate.errors ?? [], ajv.errorsText(validate.errors)).toEqual([]);
    expect(valid).toBe(true);
  });

  it('compose.yaml: two replicas built from deploy/Dockerfile, a drain that fits the stop grace period, soft-stopping HAProxy, mounts that exist', () => {
    const twinlane = composeService('twinlane');
    expect(num(twinlane, 'deploy', 'replicas')).toBe(2);
    expect(str(twinlane, 'build', 'context')).toBe('..');
    expect(str(twinlane, 'build', 'dockerfile')).toBe('deploy/Dockerfile');
    const env = envMap(at(twinlane, 'environment'));
    expect(env.get('TWINLANE_HOST')).toBe('0.0.0.0');
    expect(env.get('TWINLANE_REDIS_URL')).toBe('redis://redis:6379');
    // The models folder is the shared named volume, at the image's VOLUME.
    expect(env.get('TWINLANE_MODELS_DIR')).toBe(dockerEnv().get('TWINLANE_MODELS_DIR'));
    expect(list(twinlane, 'volumes').map(String)).toContain(`models:${env.get('TWINLANE_MODELS_DIR')}`);
    expect(Object.keys(obj(compose(), 'services'))).toEqual(
      expect.arrayContaining(['twinlane', 'redis', 'haproxy', 'prometheus', 'grafana']),
    );
    // Above HAProxy's check interval × fall count, so the replica leaves the rotation before its port closes.
    const haproxyCfg = read('haproxy.cfg');
    const inter = durationMs(/default-server[^\n]*\binter (\S+)/.exec(haproxyCfg)?.[1] ?? '');
    const fall = Number(/default-server[^\n]*\bfall (\d+)/.exec(haproxyCfg)?.[1]);
    expect(Number(env.get('TWINLANE_DRAIN_DELAY_MS'))).toBeGreaterThan(inter * fall);
    expect(durationMs(str(twinlane, 'stop_grace_period'))).toBeGreaterThan(drainMs(env));
    expect(str(twinlane, 'stop_signal')).toBe('SIGTERM');
    const haproxy = composeService('haproxy');
    expect(str(haproxy, 'stop_signal')).toBe('SIGUSR1');
    expect(list(haproxy, 'volumes')).toContain('./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro');
    expect(list(composeService('prometheus'), 'volumes')).toContain(
      './prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro',
    );
    // Bind mounts (relative sources) resolve against deploy/ and must exist there.
    for (const [name, service] of Object.entries(obj(compose(), 'services'))) {
      for (const volume of isObject(service) && Array.isArray(service['volumes']) ? service['volumes'] : []) {
        const source = String(volume).split(':')[0] as string;
        if (source.startsWith('.')) expect(existsSync(path.join(DEPLOY, source)), `${name}: ${source}`).toBe(true);
      }
    }
    const datasource = obj(list(loadYaml('grafana/provisioning/datasources/prometheus.yaml'), 'datasources'), 0);
    expect(str(datasource, 'url')).toBe('http://prometheus:9090');
    expect(
      str(obj(list(loadYaml('grafana/provisioning/dashboards/twinlane.yaml'), 'providers'), 0), 'options', 'path'),
    ).toBe('/var/lib/grafana/dashboards');
    expect(list(composeService('grafana'), 'volumes')).toContain('./grafana/dashboards:/var/lib/grafana/dashboards:ro');
  });

  it('the Kubernetes manifests validate against the API schemas, and agree with the server and each other', () => {
    const deployment = k8s('deployment.yaml');
    const service = k8s('service.yaml');
    const hpa = k8s('hpa.yaml');
    const pdb = k8s('pdb.yaml');
    // kubernetes-models' validate() throws on a schema violation (wrong type, missing required field).
    // It does not reject unknown fields, hence the explicit checks below.
    new Deployment(deployment as ConstructorParameters<typeof Deployment>[0]).validate();
    new Service(service as ConstructorParameters<typeof Service>[0]).validate();
    new HorizontalPodAutoscaler(hpa as ConstructorParameters<typeof HorizontalPodAutoscaler>[0]).validate();
    new PodDisruptionBudget(pdb as ConstructorParameters<typeof PodDisruptionBudget>[0]).validate();
    expect([deployment, service, hpa, pdb].map((m) => `${str(m, 'apiVersion')}/${str(m, 'kind')}`)).toEqual([
      'apps/v1/Deployment',
      'v1/Service',
      'autoscaling/v2/HorizontalPodAutoscaler',
      'policy/v1/PodDisruptionBudget',
    ]);

    // Probes: paths the server routes, on the container's port.
    const routes = serverGetRoutes();
    expect([...routes]).toEqual(expect.arrayContaining(['/health', '/ready', '/metrics']));
    const c = container();
    const ports = list(c, 'ports').map((p) => ({ name: str(p, 'name'), port: num(p, 'containerPort') }));
    const probe = (kind: string) => obj(c, kind, 'httpGet');
    expect(str(probe('readinessProbe'), 'path')).toBe('/ready');
    expect(str(probe('livenessProbe'), 'path')).toBe('/health');
    expect(['/health', '/ready']).toContain(str(probe('startupProbe'), 'path'));
    for (const kind of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
      expect(routes, kind).toContain(str(probe(kind), 'path'));
      const port = at(probe(kind), 'port');
      expect(typeof port === 'number' ? port : ports.find((p) => p.name === port)?.port, kind).toBe(8080);
    }
    // Generous liveness, and a startup probe long enough for a model download.
    expect(
      num(c, 'livenessProbe', 'failureThreshold') * num(c, 'livenessProbe', 'periodSeconds'),
    ).toBeGreaterThanOrEqual(60);
    expect(num(c, 'startupProbe', 'failureThreshold') * num(c, 'startupProbe', 'periodSeconds')).toBeGreaterThanOrEqual(
      300,
    );

    // The Service selects the pods and targets the container port.
    const labels = obj(deployment, 'spec', 'template', 'metadata', 'labels');
    expect(labels).toEqual(expect.objectContaining({ 'app.kubernetes.io/name': 'twinlane' }));
    expect(obj(deployment, 'spec', 'selector', 'matchLabels')).toEqual(labels);
    expect(obj(service, 'spec', 'selector')).toEqual(labels);
    expect(obj(pdb, 'spec', 'selector', 'matchLabels')).toEqual(labels);
    const servicePort = obj(list(service, 'spec', 'ports'), 0);
    const target = at(servicePort, 'targetPort');
    expect(typeof target === 'number' ? target : ports.find((p) => p.name === target)?.port).toBe(8080);
    expect(num(servicePort, 'port')).toBe(80);
    expect(str(service, 'spec', 'type')).toBe('ClusterIP');

    // HPA and PDB point at this Deployment.
    expect(obj(hpa, 'spec', 'scaleTargetRef')).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: str(deployment, 'metadata', 'name'),
    });
    expect([num(hpa, 'spec', 'minReplicas'), num(hpa, 'spec', 'maxReplicas')]).toEqual([2, 10]);
    expect(str(obj(list(hpa, 'spec', 'metrics'), 0), 'resource', 'name')).toBe('cpu');
    expect(num(pdb, 'spec', 'minAvailable')).toBe(1);

    // Draining fits the grace period; the image's uid runs with a read-only root and a writable /tmp.
    const env = envMap(at(c, 'env'));
    expect(num(podSpec(), 'terminationGracePeriodSeconds') * 1000).toBeGreaterThan(drainMs(env));
    const securityContext = obj(podSpec(), 'securityContext');
    expect(at(securityContext, 'runAsNonRoot')).toBe(true);
    const dockerUser = instructionsOf('USER').at(-1)?.args.split(':')[0];
    expect(String(num(securityContext, 'runAsUser'))).toBe(dockerUser);
    expect(at(c, 'securityContext', 'readOnlyRootFilesystem')).toBe(true);
    const mounts = list(c, 'volumeMounts').map((m) => str(m, 'mountPath'));
    expect(mounts).toEqual(expect.arrayContaining(['/tmp', env.get('TWINLANE_MODELS_DIR')]));
    expect(str(obj(c, 'resources', 'requests'), 'memory')).toMatch(/^\d+(Mi|Gi)$/);
    expect(at(c, 'resources', 'requests', 'cpu')).toBeDefined();

    // kustomization.yaml lists every other manifest of the folder.
    const manifests = readdirSync(path.join(DEPLOY, 'k8s')).filter(
      (f) => f.endsWith('.yaml') && f !== 'kustomization.yaml',
    );
    expect(list(k8s('kustomization.yaml'), 'resources').map(String).sort()).toEqual(manifests.sort());
  });

  it('every TWINLANE_* name in deploy/ is an option of src/config.ts', () => {
    const known = new Set(OPTIONS.map((o) => o.env));
    const used = new Map<string, string[]>();
    for (const file of deployFiles()) {
      for (const [name] of read(file).matchAll(/\bTWINLANE_[A-Z0-9_]*[A-Z0-9]\b/g))
        used.set(name, [...(used.get(name) ?? []), file]);
    }
    expect(used.size).toBeGreaterThan(5);
    const unknown = [...used]
      .filter(([name]) => !known.has(name))
      .map(([name, files]) => `${name} (${[...new Set(files)].join(', ')})`);
    expect(unknown).toEqual([]);
  });

  it('ports agree: the image, compose, HAProxy, Prometheus and Kubernetes all use the TWINLANE_PORT they set, and every health check is /ready', () => {
    const imagePort = Number(dockerEnv().get('TWINLANE_PORT'));
    expect(imagePort).toBe(8080);
    expect(instructionsOf('EXPOSE').map((i) => i.args.replace(/\/tcp$/, ''))).toEqual([String(imagePort)]);

    const twinlane = composeService('twinlane');
    const composePort = Number(envMap(at(twinlane, 'environment')).get('TWINLANE_PORT'));
    expect(composePort).toBe(imagePort);
    expect(list(twinlane, 'expose').map(String)).toEqual([String(composePort)]);
    // HAProxy reaches the replicas by compose's service name on that port, and listens where compose publishes it.
    const haproxyCfg = read('haproxy.cfg');
    expect(/server-template \S+ \d+ (\S+):(\d+)/.exec(haproxyCfg)?.slice(1)).toEqual(['twinlane', String(composePort)]);
    const bind = /^\s*bind :(\d+)/m.exec(haproxyCfg)?.[1];
    expect(list(composeService('haproxy'), 'ports').map((p) => String(p).split(':').at(-1))).toContain(bind);
    expect(haproxyCfg).toMatch(/option httpchk GET \/ready\b/);
    // Prometheus finds the replicas by the same name and port.
    const scrape = list(loadYaml('prometheus/prometheus.yml'), 'scrape_configs').find(
      (j) => str(j, 'job_name') === 'twinlane',
    );
    const sd = obj(list(scrape ?? null, 'dns_sd_configs'), 0);
    expect(list(sd, 'names')).toEqual(['twinlane']);
    expect(str(sd, 'type')).toBe('A');
    expect(num(sd, 'port')).toBe(composePort);
    expect(str(scrape ?? null, 'metrics_path')).toBe('/metrics');
    expect(serverGetRoutes()).toContain('/metrics');

    // Kubernetes: the container port is the TWINLANE_PORT the container gets.
    const c = container();
    const k8sPort = Number(envMap(at(c, 'env')).get('TWINLANE_PORT'));
    expect(k8sPort).toBe(imagePort);
    expect(list(c, 'ports').map((p) => num(p, 'containerPort'))).toEqual([k8sPort]);
    expect(str(k8s('deployment.yaml'), 'spec', 'template', 'metadata', 'annotations', 'prometheus.io/port')).toBe(
      String(k8sPort),
    );

    // Health checks: the image's and compose's hit /ready on the port they set.
    const imageCheck = instructionsOf('HEALTHCHECK')
      .map((i) => i.args)
      .join('\n');
    expect(imageCheck).toMatch(/\/ready\b/);
    expect(imageCheck).toContain(String(imagePort));
    const composeCheck = list(twinlane, 'healthcheck', 'test').map(String).join(' ');
    expect(composeCheck).toContain(`127.0.0.1:${composePort}/ready`);
  });

  it('the Dockerfile: multi-stage on Node 20, non-root USER, /ready HEALTHCHECK, TWINLANE_HOST=0.0.0.0, a VOLUME, exec-form CMD running node', () => {
    const from = instructionsOf('FROM').map((i) => i.args.split(/\s+/)[0] as string);
    expect(from.length).toBeGreaterThanOrEqual(2);
    for (const image of from) expect(image).toMatch(/^node:20(\.|-|$)/);

    const users = instructionsOf('USER');
    expect(users.length).toBeGreaterThan(0);
    const user = (users.at(-1) as Instruction).args.trim();
    const [uid, gid] = user.split(':');
    expect(['root', '0']).not.toContain(uid);
    expect(['root', '0']).not.toContain(gid ?? '');
    expect(uid).toMatch(/^\d+$/); // numeric, so Kubernetes' runAsNonRoot can verify it

    const env = dockerEnv();
    expect(env.get('TWINLANE_HOST')).toBe('0.0.0.0');
    const volumes = instructionsOf('VOLUME').map((i) => i.args.trim());
    expect(volumes.length).toBeGreaterThan(0);
    expect(volumes).toContain(env.get('TWINLANE_MODELS_DIR'));

    expect(instructionsOf('HEALTHCHECK').at(-1)?.args).toMatch(/\/ready\b/);
    expect(instructionsOf('STOPSIGNAL').at(-1)?.args.trim()).toBe('SIGTERM');
    const cmd: unknown = JSON.parse(instructionsOf('CMD').at(-1)?.args ?? 'null');
    expect(cmd).toEqual(['node', 'dist/src/main.js']);
    const entrypoint = instructionsOf('ENTRYPOINT').at(-1);
    if (entrypoint) expect(Array.isArray(JSON.parse(entrypoint.args))).toBe(true);

    // The build stage copies the context, and the context keeps everything that npm ci and its
    // prepare (tsc -p tsconfig.build.json) need, but not the local node_modules/ or dist/.
    const buildStage = dockerfile().slice(
      0,
      dockerfile().findIndex((i, n) => n > 0 && i.keyword === 'FROM'),
    );
    expect(buildStage.filter((i) => i.keyword === 'COPY').map((i) => i.args)).toContain('. .');
    const ignored = dockerignored();
    const tsconfig = JSON.parse(readFileSync('tsconfig.build.json', 'utf8')) as { include: string[]; extends?: string };
    for (const needed of [
      ...tsconfig.include,
      'package.json',
      'package-lock.json',
      '.npmrc',
      'tsconfig.build.json',
      tsconfig.extends ?? 'tsconfig.json',
    ]) {
      const file = path.normalize(needed);
      expect(existsSync(file), `${file} exists`).toBe(true);
      expect(ignored(file), `${file} reaches the build context`).toBe(false);
    }
    for (const local of ['node_modules', 'dist', '.git'])
      expect(ignored(local), `${local} is left out of the context`).toBe(true);
    const fromBuild = instructionsOf('COPY')
      .filter((i) => i.args.includes('--from=build'))
      .map((i) => i.args.split(/\s+/)[1]);
    expect(fromBuild).toEqual(expect.arrayContaining(['/app/package.json', '/app/node_modules', '/app/dist']));
    expect(
      dockerfile().some((i) => i.keyword === 'RUN' && /npm ci\b/.test(i.args) && /npm prune --omit=dev\b/.test(i.args)),
    ).toBe(true);
  });

  it('the image needs no system library: the native modules ship Node 20 binaries for linux x64 and arm64, sharp its own glibc libvips', () => {
    // src/uws.js loads binaries/uws_{platform}_{arch}_{abi}.node; Node 20 is ABI 115.
    const uws = readdirSync('node_modules/uWebSockets.js/binaries');
    expect(uws).toEqual(expect.arrayContaining(['uws_linux_x64_115.node', 'uws_linux_arm64_115.node']));
    expect(readdirSync('node_modules/onnxruntime-node/bin/napi-v6/linux')).toEqual(
      expect.arrayContaining(['x64', 'arm64']),
    );
    const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as {
      packages: Record<string, { optional?: boolean }>;
    };
    for (const arch of ['x64', 'arm64']) {
      for (const pkg of [`@img/sharp-linux-${arch}`, `@img/sharp-libvips-linux-${arch}`])
        expect(lock.packages[`node_modules/${pkg}`], pkg).toBeDefined();
    }
    // sharp needs no apt package on bookworm (glibc 2.36): libvips and its codecs come from npm.
    const libvips = JSON.parse(readFileSync('node_modules/@img/sharp-libvips-linux-x64/package.json', 'utf8')) as {
      config?: { glibc?: string };
    };
    expect(libvips.config?.glibc).toBe('>=2.28');
    expect(instructionsOf('FROM').every((i) => /-bookworm-slim\b/.test(i.args))).toBe(true);
  });

  it('haproxy -c accepts deploy/haproxy.cfg', async () => {
    const { stdout, stderr } = await run(HAPROXY, ['-c', '-f', path.join(DEPLOY, 'haproxy.cfg')]);
    expect(`${stdout}${stderr}`).toContain('Configuration file is valid');
  });

  it('promtool check config accepts deploy/prometheus/prometheus.yml', async () => {
    const { stdout } = await run('promtool', ['check', 'config', path.join(DEPLOY, 'prometheus', 'prometheus.yml')]);
    expect(stdout).toContain('SUCCESS');
  });
});
