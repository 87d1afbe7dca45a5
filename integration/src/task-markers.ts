import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Workload } from '../../executor/src/domain/workload.ts';
import { type ServiceProcess, waitFor } from './airfleet-process.ts';

/**
 * Per-task markers of the autoscaler suites: each task appends a line to `<markers>/<key>.start` when it
 * starts and writes `<key>.end` when done, in a folder bound into the workers at /markers.
 */
export function markerCommand(key: string, seconds: number): string[] {
  return [
    'sh',
    '-c',
    `echo "$(hostname)" >> /markers/${key}.start; sleep ${seconds}; echo done >> /markers/${key}.end`,
  ];
}

/** How many times the task started (lines in its start marker). */
export function startCount(markers: string, key: string): number {
  const file = join(markers, `${key}.start`);
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').length : 0;
}

/**
 * Tasks that did not succeed or started more than once: killed, as far as a user can tell. A later attempt
 * alone does not count: a lease handed back unstarted (it reached its worker too late under load) is retried
 * without the task having run.
 */
export function killedTasks(markers: string, finals: readonly Workload[]): Workload[] {
  return finals.filter((w) => w.state !== 'succeeded' || startCount(markers, w.key) !== 1);
}

/** Waits until every workload of `keys` has ended, and returns them. */
export function tasksEnded(service: ServiceProcess, keys: readonly string[], timeoutMs: number): Promise<Workload[]> {
  return waitFor(
    'every task to finish',
    async () => {
      const ws = await Promise.all(keys.map((k) => service.client.request<Workload>('GET', `/v1/workloads/${k}`)));
      return ws.every((w) => ['succeeded', 'failed', 'cancelled'].includes(w.state)) ? ws : null;
    },
    timeoutMs,
    () => service.process!.tail(40),
  );
}
