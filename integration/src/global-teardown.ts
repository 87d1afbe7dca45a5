import { execFileSync } from 'node:child_process';
import { TEST_LABEL } from './docker-env.ts';

/** Ryuk is off (see docker-env.ts), so remove whatever this run's crashed or interrupted suites left behind. */
export default function globalTeardown(): void {
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
