import { execFileSync } from 'node:child_process';
import { TEST_LABEL } from './docker-env.ts';

/** Ryuk is off (see docker-env.ts), so remove whatever a crashed or interrupted suite left behind. */
export default function globalTeardown(): void {
  const ids = execFileSync('docker', ['ps', '-aq', '--filter', `label=${TEST_LABEL}=true`], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
  if (ids.length > 0) execFileSync('docker', ['rm', '-f', '-v', ...ids], { stdio: 'pipe' });
}
