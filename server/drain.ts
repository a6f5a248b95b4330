// Graceful shutdown as seen from the sockets: how many requests are in flight, whether the server is
// draining, and whether it still takes new work. Draining comes in two steps so that a balancer can
// notice before anything is refused: first /ready turns 503 while every request is still served
// (answers then close their keep-alive connection, so clients reconnect to another instance); then,
// after the drain delay, the listen socket closes and embedding routes answer 503 shutting_down.

export type DrainPhase = 'serving' | 'draining' | 'closed';

export class Drain {
  #phase: DrainPhase = 'serving';
  #inFlight = 0;
  #waiters: (() => void)[] = [];

  get phase(): DrainPhase {
    return this.#phase;
  }

  /** True once draining started: /ready answers 503 and answers close their connections. */
  get draining(): boolean {
    return this.#phase !== 'serving';
  }

  /** True once the listen socket is closed: embedding routes refuse new work. */
  get refusing(): boolean {
    return this.#phase === 'closed';
  }

  begin(): void {
    if (this.#phase === 'serving') this.#phase = 'draining';
  }

  close(): void {
    this.#phase = 'closed';
  }

  opened(): void {
    this.#inFlight++;
  }

  closed(): void {
    if (--this.#inFlight === 0) for (const resolve of this.#waiters.splice(0)) resolve();
  }

  /** Resolves true when no request is in flight, or false when `timeoutMs` passed first. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.#inFlight === 0) return Promise.resolve(true);
    return new Promise((done) => {
      const finish = () => {
        clearTimeout(timer);
        done(true);
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== finish);
        done(false);
      }, timeoutMs);
      this.#waiters.push(finish);
    });
  }
}
