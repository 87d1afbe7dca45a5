import { execFileSync } from 'node:child_process';
import { configureTestcontainers, projectImage, testLabels } from './docker-env.ts';

/**
 * Fails the integration tier loudly, with the reason and the fix, instead of letting every suite time out
 * (or worse, skip) when the Docker engine or the locally built images are missing.
 */
export default function globalSetup(): void {
  configureTestcontainers();
  testLabels(); // fixes this run's id before the test workers start, so they inherit it
  try {
    execFileSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: 'pipe' });
  } catch (error) {
    const detail = error instanceof Error && 'stderr' in error ? String(error.stderr).trim() : String(error);
    throw new Error(
      `The integration tier needs a running Docker engine, and none answered (${detail}). ` +
        'Start dockerd (as root: `dockerd &`), or run `bash .ci/run`, which installs and starts it.',
    );
  }
  const required = (process.env.AIRFLEET_REQUIRED_IMAGES ?? 'postgres,executor,batch-task').split(',').filter(Boolean);
  const missing = required.map(projectImage).filter((image) => {
    try {
      execFileSync('docker', ['image', 'inspect', image], { stdio: 'pipe' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    throw new Error(`Images missing: ${missing.join(', ')}. Build them with \`npm run images\` (no registry needed).`);
  }
}
