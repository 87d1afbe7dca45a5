import { execFileSync } from 'node:child_process';
import { TEST_LABEL } from './docker-env.ts';
import { openHandleReport } from './open-handles.ts';

/** Ryuk is off (see docker-env.ts), so remove whatever this run's crashed or interrupted suites left behind. */
export default async function globalTeardown(): Promise<void> {
  // A second, as jest waits before it warns: handles the last suite was closing (a child's pipes after its
  // exit) are gone by then, and what is left is a leak. Not unref'd: with nothing else open, an unref'd timer
  // let the process end here, exit code 0, before jest wrote its results.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const open = openHandleReport();
  if (open.length > 1) console.warn(`integration: still open after the last suite:\n  ${open.join('\n  ')}`);
  const run = process.env.AIRFLEET_TEST_RUN;
  if (!run) return;
  // Swarm services and secrets first (a service's containers would otherwise be replaced as they go).
  for (const kind of ['service', 'secret'] as const) {
    try {
      const found = execFileSync('docker', [kind, 'ls', '-q', '--filter', `label=${TEST_LABEL}=${run}`], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      })
        .split('\n')
        .filter(Boolean);
      if (found.length > 0) execFileSync('docker', [kind, 'rm', ...found], { stdio: 'pipe' });
    } catch {
      // Not a Swarm manager: nothing of the kind can exist.
    }
  }
  const ids = execFileSync('docker', ['ps', '-aq', '--filter', `label=${TEST_LABEL}=${run}`], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
  if (ids.length > 0) execFileSync('docker', ['rm', '-f', '-v', ...ids], { stdio: 'pipe' });
}
