import { execFileSync } from 'node:child_process';
import { TEST_LABEL } from './docker-env.ts';

/** Ryuk is off (see docker-env.ts), so remove whatever this run's crashed or interrupted suites left behind. */
export default function globalTeardown(): void {
  const run = process.env.AIRFLEET_TEST_RUN;
  if (!run) return;
  const ids = execFileSync('docker', ['ps', '-aq', '--filter', `label=${TEST_LABEL}=${run}`], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
  if (ids.length > 0) execFileSync('docker', ['rm', '-f', '-v', ...ids], { stdio: 'pipe' });
}
