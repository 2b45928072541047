import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // e2e suites each start their own upstream stack on free loopback ports; two at a time fits 2 cores.
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ['default'],
  },
});
