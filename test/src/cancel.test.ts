// The request flow's own cancellation (src/cancel.ts): what the cache actor and the batcher rely on.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CancelSource, cancelledError, DeadlineCancellation } from '../../src/cancel.js';

describe('CancelSource', () => {
  it('tells each listener once, keeps the first reason, and lets a listener go', () => {
    const source = new CancelSource();
    const heard: string[] = [];
    source.onCancel((why) => heard.push(`a:${why}`));
    const removeB = source.onCancel((why) => heard.push(`b:${why}`));
    removeB();
    expect(source.cancelled).toBeNull();
    source.cancel('deadline');
    source.cancel('cancelled');
    expect(heard).toEqual(['a:deadline']);
    expect(source.cancelled).toBe('deadline');
    // Too late to listen: nothing is ever called, and removing it is harmless.
    source.onCancel(() => heard.push('late'))();
    expect(heard).toEqual(['a:deadline']);
    expect(cancelledError(source).why).toBe('deadline');
    expect(cancelledError(undefined).why).toBe('cancelled');
  });
});

describe('DeadlineCancellation', () => {
  afterEach(() => vi.useRealTimers());

  it('reads the deadline from the clock, with no timer until someone listens', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const timed = new DeadlineCancellation(undefined, performance.now() + 50);
    expect(timed.cancelled).toBeNull();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(50);
    expect(timed.cancelled).toBe('deadline');
    expect(vi.getTimerCount()).toBe(0);
  });

  it("fires at the deadline, or at the client's cancellation if that comes first, and dispose ends both", () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const heard: string[] = [];
    const late = new DeadlineCancellation(undefined, performance.now() + 50);
    late.onCancel((why) => heard.push(`late:${why}`));
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(49);
    expect(heard).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(heard).toEqual(['late:deadline']);

    const client = new CancelSource();
    const gone = new DeadlineCancellation(client, performance.now() + 50);
    gone.onCancel((why) => heard.push(`gone:${why}`));
    client.cancel();
    expect(gone.cancelled).toBe('cancelled');
    expect(heard).toEqual(['late:deadline', 'gone:cancelled']);
    gone.dispose();

    const answered = new DeadlineCancellation(client, performance.now() + 50);
    expect(answered.cancelled).toBe('cancelled');
    const other = new CancelSource();
    const done = new DeadlineCancellation(other, performance.now() + 50);
    done.onCancel((why) => heard.push(`done:${why}`));
    done.dispose();
    expect(vi.getTimerCount()).toBe(0);
    other.cancel();
    expect(heard).toEqual(['late:deadline', 'gone:cancelled']);
  });
});
