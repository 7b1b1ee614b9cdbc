import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{core,adapters,simulations,proofs}/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
