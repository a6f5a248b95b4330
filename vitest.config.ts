import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Each server test file spawns real servers with model sessions; on a 2-core machine running
    // files one at a time keeps latency-sensitive assertions (timeouts) honest.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
