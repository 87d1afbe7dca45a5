/**
 * Environment every integration suite shares. Ryuk (testcontainers' reaper) is off because its image cannot
 * be pulled without a registry; containers are labelled instead and removed by label in global teardown.
 */
export const TEST_LABEL = 'airfleet.test';

/**
 * Labels for every container a run starts: the run's id (set once in global setup and inherited by the
 * test workers), so that cleanup removes this run's containers and never those of a run going on beside it.
 */
export function testLabels(): Record<string, string> {
  process.env.AIRFLEET_TEST_RUN ??= `run-${process.pid}-${Date.now()}`;
  return { [TEST_LABEL]: process.env.AIRFLEET_TEST_RUN };
}
export const IMAGE_TAG = process.env.AIRFLEET_IMAGE_TAG ?? 'dev';

export function configureTestcontainers(): void {
  process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
}

/** A locally built project image, e.g. `local/airfleet-postgres:dev` (see images/build-all.sh). */
export function projectImage(name: string): string {
  return `local/airfleet-${name}:${IMAGE_TAG}`;
}
