// What /ready reports: every lane ready (warm, at least one live worker) means ready; each lane says
// whether it is degraded (fewer live workers than configured); the cache tiers are reported, never a
// reason to be unready (Redis down only costs hits).
import type { CacheActor, RedisState } from '../cache/index.js';
import type { LaneHandle, LaneName, LaneStats } from '../lanes/index.js';

export interface LaneReadiness extends LaneStats {
  /** The lane's default model. */
  readonly model: string;
  readonly models: readonly string[];
}

export interface Readiness {
  readonly ready: boolean;
  readonly lanes: Readonly<Partial<Record<LaneName, LaneReadiness>>>;
  readonly cache: {
    readonly l1: 'up' | 'disabled';
    readonly redis: RedisState;
    readonly l1Entries: number;
    readonly l1Bytes: number;
  };
}

export interface ServedLane {
  readonly name: LaneName;
  readonly lane: LaneHandle;
  /** Model ids on the lane, its default first. */
  readonly models: readonly string[];
}

export function readinessOf(lanes: readonly ServedLane[], cache: CacheActor, l1Enabled: boolean): Readiness {
  const stats = cache.stats();
  const entries = lanes.map((l) => [l.name, { ...l.lane.stats(), model: l.models[0]!, models: l.models }] as const);
  return {
    // A degraded lane (a worker being replaced) still serves; one with no live worker cannot.
    ready: entries.every(([, l]) => l.ready && l.workers.live > 0),
    lanes: Object.fromEntries(entries),
    cache: {
      l1: l1Enabled ? 'up' : 'disabled',
      redis: cache.status().redis,
      l1Entries: stats.l1Entries,
      l1Bytes: stats.l1Bytes,
    },
  };
}
