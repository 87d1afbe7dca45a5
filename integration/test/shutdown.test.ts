import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Workload } from '../../executor/src/domain/workload.ts';
import { type AirfleetProcess, ServiceProcess, waitFor } from '../src/airfleet-process.ts';
import { type StartedPostgres, startPostgres } from '../src/postgres.ts';

/**
 * Clean shutdowns (docs/architecture.md, "Several instances" and "Leases and fencing"): the service and its
 * workers get SIGTERM at the same moment while a backlog waits. Nothing starts after that moment — a stopping
 * service hands out no lease, a stopping worker starts none it still receives — and after a restart every task
 * ends exactly once.
 */
interface LogLine {
  time: number;
  msg?: string;
  workload?: string;
  attempt?: number;
}

/** The JSON lines of a process's output (pino), skipping anything else it printed. */
function logLines(p: AirfleetProcess): LogLine[] {
  return p.output
    .join('')
    .split('\n')
    .flatMap((line) => {
      try {
        const parsed = JSON.parse(line) as LogLine;
        return typeof parsed.time === 'number' ? [parsed] : [];
      } catch {
        return [];
      }
    });
}

describe('SIGTERM to the service and its workers at once', () => {
  let postgres: StartedPostgres;
  let dir: string;
  beforeAll(async () => {
    postgres = await startPostgres();
    dir = mkdtempSync(join(tmpdir(), 'airfleet-shutdown-'));
  });
  afterAll(async () => {
    await postgres?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts no task after the signal, and every task ends exactly once after a restart', async () => {
    const service = await ServiceProcess.start({
      databaseUrl: await postgres.createDatabase('shutdown'),
      heartbeatIntervalMs: 500,
      heartbeatTimeoutMs: 20_000,
    });
    let workers: AirfleetProcess[] = [];
    const startWorkers = () => {
      workers = ['s1', 's2'].map((name) => service.worker(name, ['--queues', 'backlog', '--concurrency', '2']));
    };
    try {
      startWorkers();
      const ids: string[] = [];
      for (let i = 0; i < 50; i++) {
        const w = await service.client.request<Workload>('POST', '/v1/workloads', {
          body: {
            key: `backlog-${i}`,
            queue: 'backlog',
            command: ['sh', '-c', `date +%s%N >> ${join(dir, `started-${i}`)}; sleep 0.4`],
          },
        });
        ids.push(w.id);
      }
      const get = (id: string) => service.client.request<Workload>('GET', `/v1/workloads/${id}`);
      await waitFor('the workers to be busy', async () => {
        const all = await Promise.all(ids.map(get));
        return all.filter((w) => w.state === 'succeeded').length >= 6;
      });
      // The same moment for all three.
      const signalledAt = BigInt(Date.now()) * 1_000_000n;
      const exits = [service.process!.kill('SIGTERM'), ...workers.map((w) => w.kill('SIGTERM'))];
      await Promise.all(exits);
      const restartedAt = BigInt(Date.now()) * 1_000_000n;
      // What each stopped worker says about itself, on its own clock: when its SIGTERM handler ran, and when it
      // started each task (after the runtime spawned it). A task's own marker is written some milliseconds after
      // its spawn (more under load), so only the worker's log can say whether it started after the signal.
      const stopped = workers.map((w) => ({ name: w.name, lines: logLines(w) }));
      await service.restart('SIGKILL');
      startWorkers();
      const done = await waitFor(
        'every task to end',
        async () => {
          const all = await Promise.all(ids.map(get));
          return all.every((w) => ['succeeded', 'failed', 'cancelled'].includes(w.state)) ? all : null;
        },
        60_000,
        () => workers.map((w) => w.tail(10)).join('\n'),
      );
      for (const w of done.filter((x) => x.state === 'failed')) {
        console.info(`failed: ${w.key} attempt ${w.attempt} ${w.reason}: ${w.message}`);
      }
      const during: string[] = [];
      for (const { name, lines } of stopped) {
        const signalled = lines.find((l) => l.msg?.startsWith('shutting down'));
        expect({ worker: name, logsItsShutdown: signalled !== undefined }).toEqual({
          worker: name,
          logsItsShutdown: true,
        });
        const starts = lines.filter((l) => l.msg === 'task started');
        expect(starts.length).toBeGreaterThan(0);
        for (const l of starts)
          if (l.time > signalled!.time) during.push(`${name}: ${l.workload} attempt ${l.attempt}`);
      }
      const byId = new Map(done.map((w) => [w.id, w.key]));
      const twice: string[] = [];
      for (const [i, w] of done.entries()) {
        const file = join(dir, `started-${i}`);
        const starts = existsSync(file)
          ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map(BigInt)
          : [];
        if (starts.length > 1) twice.push(w.key);
        if (w.state === 'succeeded') expect(starts).toHaveLength(1);
        // What was running at the signal was stopped and reported; nothing else failed.
        if (w.state === 'failed')
          expect(`${w.key} attempt ${w.attempt}: ${w.reason}: ${w.message}`).toMatch(/: preempted: /);
      }
      const outcomes = done.reduce<Record<string, number>>((m, w) => {
        const label = w.state === 'failed' ? `failed:${w.reason}` : w.state;
        m[label] = (m[label] ?? 0) + 1;
        return m;
      }, {});
      console.info(
        `shutdown: ${Number(restartedAt - signalledAt) / 1e6} ms from SIGTERM to all three gone; outcomes ${JSON.stringify(outcomes)}`,
      );
      expect(during.map((d) => d.replace(/\S+(?= attempt)/, (id) => byId.get(id) ?? id))).toEqual([]);
      expect(twice).toEqual([]);
    } finally {
      for (const w of workers) await w.kill('SIGKILL');
      await service.stop();
    }
  }, 180_000);
});
