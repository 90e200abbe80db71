import { defineConfig } from "vitest/config"

export default defineConfig({
  resolve: { conditions: ["source"] },
  ssr: { resolve: { conditions: ["source"] } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/**/*.test.ts"],
    // Real processes: one file at a time per core keeps timing faults (interrupt grace) honest.
    pool: "forks",
    // What passing tests print (the expected failures they provoke) would bury a failure's output.
    silent: "passed-only",
    // Also a JSON record, for .ci/run to name what failed at the end of a long log.
    reporters: ["default", ["json", { outputFile: "test-results/vitest.json" }]],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    globalSetup: ["scripts/vitest-global-setup.ts"]
  }
})
