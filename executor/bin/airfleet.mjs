#!/usr/bin/env node
// The `airfleet` command. Runs the compiled JavaScript in ../dist (`npm run build`) when it is current, else
// the TypeScript sources directly (Node 24 type stripping), so editing a source never runs stale output.
// Compiled output matters for the service: type stripping keeps its WebAssembly stripper and every
// stripped source loaded, ~30 MB of resident memory a long-running process should not carry.
import { readdirSync, statSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';

/**
 * V8 heap settings for `airfleet serve`, whose resident memory is a design target (<= 300 MB with 2,000
 * long-polling workers and 100,000 live workloads; scripts/bench.mjs measures it). V8 sizes its heap from
 * the memory it can see. On a host with many GB that is a 64 MB semi-space (a 128 MB young generation) and
 * an old generation allowed to grow to 4x its live size between full collections, and freed heap pages
 * stay resident for reuse: the service's ~60 MB live set cost ~600 MB. These flags give it what Node picks
 * by itself in the stacks' default 1 GiB task: an old space of 512 MB, at which V8 lets the old generation
 * grow to only ~1.4x its live size. The semi-space is capped at 4 MB: the service's garbage is short-lived
 * request data that dies there as well. Against 8 MB (`npm run bench -- --quick --only dispatch --rates 250`,
 * 4 runs each, alternated): idle RSS 94 MB instead of 101, service CPU per task +3%, lease p50 alike.
 * Applied only where Node's own limit is larger (smaller containers keep their smaller defaults); flags the
 * caller gives (command line, NODE_OPTIONS) win.
 */
const SERVE_FLAGS = ['--max-semi-space-size=4', '--max-old-space-size=512'];
/** Node's default heap limit in a 1 GiB container is ~560 MB; above this, V8 sized the heap for a bigger machine. */
const SIZED_FOR_A_BIGGER_MACHINE_MB = 600;

const here = new URL('.', import.meta.url);
const args = process.argv.slice(2);

if (isServe(args)) applyNodeFlags(SERVE_FLAGS);
const { main } = await import(distIsCurrent() ? '../dist/cli/main.js' : '../src/cli/main.ts');
await main(process.argv);

/** The first word that is not an option (or an option's value) names the command. */
function isServe(argv) {
  const withValue = new Set(['--api-url', '--token', '--data-dir']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (withValue.has(a)) i++;
    else if (!a.startsWith('-')) return a === 'serve';
  }
  return false;
}

/**
 * V8's heap is sized when the process starts, so its flags cannot be set from here (v8.setFlagsFromString
 * is too late): re-run this same command in this same process with them (execve keeps the pid, so process
 * managers and signals are unaffected). Where execve is missing (Windows), the defaults stay.
 */
function applyNodeFlags(flags) {
  if (getHeapStatistics().heap_size_limit / 2 ** 20 <= SIZED_FOR_A_BIGGER_MACHINE_MB) return;
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  const name = (flag) => flag.split('=')[0].replaceAll('_', '-');
  const missing = flags.filter((f) => !given.some((g) => name(g) === name(f)));
  if (missing.length === 0 || typeof process.execve !== 'function') return;
  process.execve(process.execPath, [process.execPath, ...missing, ...process.execArgv, ...process.argv.slice(1)]);
}

/** dist is current when it exists and was built after the last change to any source (or has no sources). */
function distIsCurrent() {
  let built;
  try {
    built = statSync(new URL('../dist/cli/main.js', here)).mtimeMs;
  } catch {
    return false;
  }
  const src = new URL('../src/', here);
  let files;
  try {
    files = readdirSync(src, { recursive: true });
  } catch {
    return true; // an installation with dist only (the container image)
  }
  return files.every((f) => statSync(new URL(f, src)).mtimeMs <= built);
}
