#!/usr/bin/env node
// Node 24 runs the TypeScript sources directly (type stripping): there is no build step.
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
