// A prom-client counter for the hot path: increments are plain additions into a per-label-set slot,
// folded into the counter when /metrics is scraped. prom-client hashes the label object on every
// inc(), even on a label child (measured at about 0.25 µs a call), and a cache hit makes three or
// four such increments; a slot is found by a short string key instead, and nothing is lost or
// delayed that a scrape would see.
import client from 'prom-client';

interface Slot<L extends string> {
  readonly labels: Readonly<Record<L, string>>;
  pending: number;
}

export class Tally<L extends string> {
  readonly #slots = new Map<string, Slot<L>>();

  constructor(configuration: client.CounterConfiguration<L>) {
    const slots = this.#slots;
    new client.Counter<L>({
      ...configuration,
      collect() {
        for (const slot of slots.values()) {
          if (slot.pending === 0) continue;
          this.inc(slot.labels, slot.pending);
          slot.pending = 0;
        }
      },
    });
  }

  /** Adds `count` to the series `labels`; `key` names that label set (any string unique to it). */
  add(key: string, labels: () => Readonly<Record<L, string>>, count = 1): void {
    let slot = this.#slots.get(key);
    if (!slot) {
      slot = { labels: labels(), pending: 0 };
      this.#slots.set(key, slot);
    }
    slot.pending += count;
  }
}
