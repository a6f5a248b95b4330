import { afterEach, describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../cache/breaker.js';
import type { BreakerState } from '../../cache/index.js';
import { waitFor } from '../helpers/redis.js';

const breakers: CircuitBreaker[] = [];

function breaker(probe: () => Promise<void>, failureThreshold = 3) {
  const states: BreakerState[] = [];
  const b = new CircuitBreaker({ failureThreshold, coolDownMs: 30, probe, onStateChange: (s) => states.push(s) });
  breakers.push(b);
  return { b, states };
}

afterEach(() => {
  for (const b of breakers.splice(0)) b.dispose();
});

describe('circuit breaker', () => {
  it('opens only after the configured number of consecutive failures', () => {
    const { b, states } = breaker(async () => undefined);
    b.failure();
    b.failure();
    b.success();
    b.failure();
    b.failure();
    expect(b.state).toBe('closed');
    b.failure();
    expect(b.state).toBe('open');
    expect(b.closed).toBe(false);
    expect(states).toEqual(['open']);
  });

  it('probes after the cool-down and closes when the probe succeeds', async () => {
    let probes = 0;
    const { b, states } = breaker(async () => {
      probes++;
    }, 1);
    b.failure();
    await waitFor(() => b.state === 'closed', 5000, 'the breaker to close');
    expect(probes).toBe(1);
    expect(states).toEqual(['open', 'half-open', 'closed']);
  });

  it('re-opens when the probe fails, and keeps probing until one succeeds', async () => {
    let probes = 0;
    const { b, states } = breaker(async () => {
      if (++probes < 3) throw new Error('still down');
    }, 1);
    b.failure();
    await waitFor(() => b.state === 'closed', 5000, 'the breaker to close');
    expect(probes).toBe(3);
    expect(states).toEqual(['open', 'half-open', 'open', 'half-open', 'open', 'half-open', 'closed']);
  });

  it('stops probing once disposed', async () => {
    let probes = 0;
    const { b } = breaker(async () => {
      probes++;
    }, 1);
    b.failure();
    b.dispose();
    await new Promise((r) => setTimeout(r, 100));
    expect(probes).toBe(0);
    expect(b.state).toBe('open');
  });
});
