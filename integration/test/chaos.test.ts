import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../../executor/src/client/api-client.ts';
import type { Workload } from '../../executor/src/domain/workload.ts';
import { seeded } from '../../executor/test/support/seeded.ts';
import { ADMIN_TOKEN, type AirfleetProcess, ServiceProcess, waitFor } from '../src/airfleet-process.ts';
import { type StartedPostgres, startPostgres } from '../src/postgres.ts';
import { TcpBalancer } from '../src/tcp-balancer.ts';

/**
 * Exactly once, under fire (docs/architecture.md): three service instances on one PostgreSQL behind a load
 * balancer, three process workers, 500 tasks that each append a line to a marker file of their own. Random
 * instances are SIGKILLed every few seconds and restarted; one worker is SIGKILLed twice and restarted. In
 * the end every workload is finished, none succeeded without its marker, no marker has two lines (no task
 * ran twice), and the tasks of the killed worker are accounted for: failed as lost, or run once.
 */
const TASKS = Number(process.env.AIRFLEET_CHAOS_TASKS ?? 500);
const INSTANCE_KILLS = Number(process.env.AIRFLEET_CHAOS_KILLS ?? 6);

describe('chaos: instances and a worker killed at random while 500 tasks run', () => {
  let postgres: StartedPostgres;
  let dir: string;
  beforeAll(async () => {
    postgres = await startPostgres();
    dir = mkdtempSync(join(tmpdir(), 'airfleet-chaos-'));
  });
  afterAll(async () => {
    await postgres?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finishes every task, none twice, none lost silently', async () => {
    const databaseUrl = await postgres.createDatabase('chaos');
    const seed = Number(process.env.AIRFLEET_CHAOS_SEED ?? Date.now() % 100_000);
    console.info(`chaos seed ${seed} (AIRFLEET_CHAOS_SEED to repeat)`);
    const random = seeded(seed);
    const instances: ServiceProcess[] = [];
    for (let i = 0; i < 3; i++) {
      instances.push(
        await ServiceProcess.start({
          databaseUrl,
          heartbeatIntervalMs: 1_000,
          heartbeatTimeoutMs: 20_000,
          env: {
            AIRFLEET_INSTANCE_NAME: `chaos-${i}`,
            AIRFLEET_INSTANCE_HEARTBEAT_MS: '300',
            AIRFLEET_INSTANCE_TIMEOUT_MS: '3000',
            AIRFLEET_LOG_LEVEL: 'warn',
          },
        }),
      );
    }
    const balancer = await TcpBalancer.start(instances.map((s) => s.port));
    const api = new ApiClient(balancer.url, ADMIN_TOKEN);
    const retry = { retryForMs: 60_000 };
    // Workers reach the service through the balancer, as a deployment's would.
    const viaBalancer = { AIRFLEET_API_URL: balancer.url, AIRFLEET_LOG_LEVEL: 'warn' };
    const workers = new Map<string, AirfleetProcess>();
    const startWorker = (name: string) =>
      workers.set(name, instances[0]!.worker(name, ['--queues', 'chaos', '--concurrency', '4'], viaBalancer));
    for (const name of ['cw0', 'cw1', 'cw2']) startWorker(name);
    const started = Date.now();
    try {
      // Submit in batches while the chaos goes on: a batch that an instance's death cuts short is sent again
      // (keys make that idempotent).
      const ids: string[] = [];
      const submitting = (async () => {
        for (let i = 0; i < TASKS; i += 50) {
          const batch = Array.from({ length: Math.min(50, TASKS - i) }, (_, j) => {
            const n = i + j;
            const seconds = (0.1 + random() * 0.6).toFixed(2);
            return {
              key: `chaos-${n}`,
              queue: 'chaos',
              command: ['sh', '-c', `echo "$AIRFLEET_ATTEMPT" >> ${join(dir, `marker-${n}`)}; sleep ${seconds}`],
            };
          });
          const { results } = await api.request<{ results: Array<{ workload: Workload }> }>(
            'POST',
            '/v1/workloads/batch',
            { body: { workloads: batch }, retry },
          );
          ids.push(...results.map((r) => r.workload.id));
          await new Promise((r) => setTimeout(r, 300));
        }
      })();

      // The chaos: instances killed and restarted; one worker killed twice and restarted.
      let kills = 0;
      const killedWorker = 'cw1';
      const workerKills: number[] = [];
      for (let round = 0; kills < INSTANCE_KILLS || workerKills.length < 2; round++) {
        await new Promise((r) => setTimeout(r, 1_500 + random() * 2_000));
        if (kills < INSTANCE_KILLS) {
          const victim = instances[Math.floor(random() * instances.length)]!;
          await victim.process?.kill('SIGKILL');
          kills++;
          await new Promise((r) => setTimeout(r, 500 + random() * 1_500));
          await victim.restart('SIGKILL');
        }
        if (workerKills.length < 2 && round % 3 === 1) {
          await workers.get(killedWorker)!.kill('SIGKILL');
          workerKills.push(Date.now());
          await new Promise((r) => setTimeout(r, 1_000));
          startWorker(killedWorker); // same name, same state directory: it takes its name back
        }
      }
      await submitting;
      expect(ids.length).toBe(TASKS);

      const done = await waitFor(
        `${TASKS} workloads to end`,
        async () => {
          const all: Workload[] = [];
          for (let i = 0; i < ids.length; i += 200) {
            const page = await Promise.all(
              ids.slice(i, i + 200).map((id) => api.request<Workload>('GET', `/v1/workloads/${id}`, { retry })),
            );
            all.push(...page);
          }
          return all.every((w) => ['succeeded', 'failed', 'cancelled'].includes(w.state)) ? all : null;
        },
        240_000,
        () => [...workers].map(([name, w]) => `--- ${name}\n${w.tail(15)}`).join('\n'),
      );

      const counts: Record<string, number> = {};
      const problems: string[] = [];
      let markers = 0;
      let retriedBeforeStart = 0;
      for (const w of done) {
        const label = w.state === 'failed' ? `failed:${w.reason}` : w.state;
        counts[label] = (counts[label] ?? 0) + 1;
        const n = Number(w.key.slice('chaos-'.length));
        const file = join(dir, `marker-${n}`);
        const lines = existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : [];
        if (lines.length > 0) markers++;
        if (lines.length > 1) problems.push(`${w.key} ran ${lines.length} times (attempts ${lines.join(',')})`);
        if (w.state === 'succeeded' && lines.length !== 1) problems.push(`${w.key} succeeded without its marker`);
        if (w.state === 'succeeded' && lines[0] !== String(w.attempt)) {
          problems.push(`${w.key} succeeded on attempt ${w.attempt} but attempt ${lines[0]} ran`);
        }
        if (w.state === 'failed' && w.reason !== 'lost') problems.push(`${w.key} failed as ${w.reason}: ${w.message}`);
        if (w.attempt > 1) retriedBeforeStart++;
      }
      console.info(
        `chaos: ${TASKS} tasks in ${((Date.now() - started) / 1000).toFixed(1)} s; ${kills} instance kills, ` +
          `worker ${killedWorker} killed ${workerKills.length} times; outcomes ${JSON.stringify(counts)}; ` +
          `${markers} tasks ran, none twice: ${problems.length === 0}; ${retriedBeforeStart} requeued before they started`,
      );
      expect(problems).toEqual([]);
      expect(kills).toBeGreaterThanOrEqual(6);
      // The lost ones are the killed worker's running tasks (they died with it), and only those.
      const lost = done.filter((w) => w.reason === 'lost');
      expect(lost.every((w) => w.workerName === killedWorker)).toBe(true);
    } finally {
      for (const w of workers.values()) await w.kill('SIGKILL');
      await balancer.stop();
      for (const s of instances) await s.stop();
    }
  }, 600_000);
});
