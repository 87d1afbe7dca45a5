// Two tiers, one runner: `unit` needs nothing but Node; `integration` needs a Docker engine and the images
// built by images/build-all.sh. @swc/jest strips types (same semantics as Node's type stripping) and
// emits CommonJS so jest runs without --experimental-vm-modules.
const transform = {
  '^.+\\.(t|j|mj)s$': [
    '@swc/jest',
    {
      jsc: { parser: { syntax: 'typescript' }, target: 'es2023' },
      module: { type: 'commonjs' },
    },
  ],
};
const common = {
  transform,
  testEnvironment: 'node',
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json'],
  // zx and a few other dependencies ship ESM only; let swc transform them too.
  transformIgnorePatterns: ['/node_modules/(?!(zx)/)'],
  // Build contexts and synth output hold copies of package.json files; keep them out of module resolution.
  modulePathIgnorePatterns: ['<rootDir>/images/', '<rootDir>/cdktf.out/', '<rootDir>/integration/.venv/'],
};
module.exports = {
  // Jest reads the timeout from the top level only; unit tests finish in milliseconds anyway.
  testTimeout: 120_000,
  // A global option in jest: it orders the integration tier (quiet suites first, timing-sensitive ones last,
  // see the file) and leaves the unit tier to jest's own order.
  testSequencer: '<rootDir>/integration/src/sequencer.cjs',
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/executor/test/unit/**/*.test.ts', '<rootDir>/stacks/test/**/*.test.ts'],
    },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/integration/test/**/*.test.ts'],
      globalSetup: '<rootDir>/integration/src/global-setup.ts',
      globalTeardown: '<rootDir>/integration/src/global-teardown.ts',
    },
  ],
};
