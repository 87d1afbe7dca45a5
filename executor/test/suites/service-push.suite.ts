import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findRunProcesses } from '../../src/backends/local/run-dir.ts';
import type { ServiceConfigInput } from '../../src/config.ts';
import type { WorkloadState } from '../../src/domain/states.ts';
import { type Workload, workloadInput } from '../../src/domain/workload.ts';
import { InvalidInputError } from '../../src/errors.ts';
import type { ExecutorService } from '../../src/service/executor-service.ts';
import { type OpenService, waitFor, waitUntil } from '../support/service.ts';

/**
 * The dispatcher and the push-backend contract (claim, submit, watch, cancel, logs, reconcile), driven
 * through the `local` backend: real processes on this host, no stand-ins. Runs on PGlite in the unit tier
 * and on PostgreSQL in the integration tier.
 */
export function servicePushSuite(openService: OpenService): void {
  describe('executor service with a push backend (local)', () => {
    let service: ExecutorService;
    let n = 0;
    let scratch: string;
    const base: ServiceConfigInput = { backends: ['pool', 'local'], localConcurrency: 2, localKillGraceMs: 500 };
    beforeAll(async () => {
      scratch = mkdtempSync(join(tmpdir(), 'airfleet-push-'));
      service = await openService(base);
    });
    afterAll(async () => {
      await service?.close();
    });
    beforeEach(() => {
      n++;
    });

    const input = (over: Record<string, unknown>) =>
      workloadInput.parse({ backend: 'local', queue: `push-${n}`, ...over, key: `${String(over.key)}-${n}` });

    it('runs a workload to success with stdout and stderr kept apart, through the states in order', async () => {
      const { workload } = await service.submit(
        input({ key: 'ok', command: ['sh', '-c', 'echo "to out $AIRFLEET_ATTEMPT"; echo to err >&2'] }),
      );
      const done = await settle(service, workload.id);
      expect(done).toMatchObject({ state: 'succeeded', exitCode: 0, attempt: 1 });
      // A task this short can end before the submit call has returned: the job's reference is then recorded
      // on the ended attempt a moment after the end (store/workloads.ts, markSubmitted).
      const recorded = await waitFor(async () => (await service.getWorkload(workload.id)).backendRef);
      expect(recorded).toBe(`${workload.id}.1`);
      expect(await logText(service, workload.id, 'stdout')).toBe('to out 1\n');
      expect(await logText(service, workload.id, 'stderr')).toBe('to err\n');
      // `pending` (submitted, not started) is skipped when the backend sees the start before the submit call
      // has returned: both orders are legal, anything else is not.
      const states = await statesOf(service, workload.id);
      expect(states.filter((s) => s !== 'pending')).toEqual(['queued', 'submitting', 'running', 'succeeded']);
      expect([4, 5]).toContain(states.length);
      if (states.length === 5) expect(states[2]).toBe('pending');
    });

    it('gives the task its secretEnv in its environment, not on its command line', async () => {
      const { workload } = await service.submit(
        input({
          key: 'secret',
          command: ['sh', '-c', 'test "${#TOKEN}" = 6 && echo has-it; tr "\\0" " " < /proc/$$/cmdline'],
          secretEnv: { TOKEN: 's3cr3t' },
        }),
      );
      const done = await settle(service, workload.id);
      expect(done).toMatchObject({ state: 'succeeded' });
      const out = await logText(service, workload.id, 'stdout');
      expect(out.startsWith('has-it\n')).toBe(true);
      expect(out).not.toContain('s3cr3t');
    });

    it('fails with the exit code and keeps the output written before the exit', async () => {
      const { workload } = await service.submit(input({ key: 'exit7', command: ['sh', '-c', 'echo before; exit 7'] }));
      const done = await settle(service, workload.id);
      expect(done).toMatchObject({ state: 'failed', reason: 'task_error', exitCode: 7, message: 'exited with code 7' });
      expect(await logText(service, workload.id, 'stdout')).toBe('before\n');
    });

    it('never runs more than its concurrency at once, and starts the highest priority first', async () => {
      const journal = join(scratch, `journal-${n}`);
      writeFileSync(journal, '');
      const task = (name: string) => [
        'sh',
        '-c',
        `echo "start ${name}" >> ${journal}; sleep 0.3; echo "end ${name}" >> ${journal}`,
      ];
      // A blocker fills both slots first, so the rest wait in the queue and are claimed by priority.
      const blockers = await service.submitBatch([
        input({ key: 'b1', command: task('b1') }),
        input({ key: 'b2', command: task('b2') }),
      ]);
      await waitUntil(async () => (await settleState(service, blockers[0]!.workload.id)) === 'running');
      const rest = await service.submitBatch([
        input({ key: 'low', command: task('low'), priorityWeight: 1 }),
        input({ key: 'mid', command: task('mid'), priorityWeight: 5 }),
        input({ key: 'high', command: task('high'), priorityWeight: 9 }),
        input({ key: 'low2', command: task('low2'), priorityWeight: 1 }),
      ]);
      for (const r of [...blockers, ...rest]) expect((await settle(service, r.workload.id)).state).toBe('succeeded');
      const lines = readFileSync(journal, 'utf8').trim().split('\n');
      let running = 0;
      let peak = 0;
      for (const line of lines) {
        running += line.startsWith('start') ? 1 : -1;
        peak = Math.max(peak, running);
      }
      expect({ peak, lines }).toEqual({ peak: 2, lines }); // the journal, should it fail
      const starts = lines.filter((l) => l.startsWith('start')).map((l) => l.slice(6));
      // Two start together once two slots free up, so order is asserted between priority levels: both higher
      // ones before both lower ones (which of two started together writes first is the scheduler's call).
      expect(new Set(starts.slice(2, 4))).toEqual(new Set(['high', 'mid']));
      expect(new Set(starts.slice(4))).toEqual(new Set(['low', 'low2']));
    });

    it('claims a submission in its own transaction when a slot is free, never past the concurrency', async () => {
      // Idle (the previous tests settled): the reply already carries the claim, no dispatch pass between.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const first = await service.submit(input({ key: 'direct', command: ['true'] }));
      expect(first.workload.state).toBe('submitting');
      expect((await settle(service, first.workload.id)).state).toBe('succeeded');
      // Single submissions all at once: claims in their transactions race the dispatcher's own passes.
      const journal = join(scratch, `journal-${n}`);
      writeFileSync(journal, '');
      const task = (name: string) => ['sh', '-c', `echo "start" >> ${journal}; sleep 0.2; echo "end" >> ${journal}`];
      const many = await Promise.all(
        Array.from({ length: 8 }, (_, i) => service.submit(input({ key: `burst${i}`, command: task(`${i}`) }))),
      );
      for (const r of many) expect((await settle(service, r.workload.id)).state).toBe('succeeded');
      const lines = readFileSync(journal, 'utf8').trim().split('\n');
      let running = 0;
      let peak = 0;
      for (const line of lines) {
        running += line === 'start' ? 1 : -1;
        peak = Math.max(peak, running);
      }
      expect({ peak, starts: lines.filter((l) => l === 'start').length }).toEqual({ peak: 2, starts: 8 });
    });

    it('cancels a running task: its process group is stopped and the workload ends cancelled', async () => {
      const marker = join(scratch, `child-alive-${n}`);
      const { workload } = await service.submit(
        input({ key: 'cancel', command: ['sh', '-c', `(sleep 2; touch ${marker}) & sleep 30`] }),
      );
      await waitUntil(async () => (await settleState(service, workload.id)) === 'running');
      const started = Date.now();
      await service.cancel(workload.id);
      const done = await settle(service, workload.id);
      expect(done).toMatchObject({ state: 'cancelled', reason: 'cancelled' });
      expect(Date.now() - started).toBeLessThan(3_000);
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect(existsSync(marker)).toBe(false); // the background child died with its group
    });

    it('stops a task past its runSeconds and fails it as a task error', async () => {
      const { workload } = await service.submit(
        input({ key: 'slow', command: ['sleep', '30'], timeouts: { runSeconds: 1 } }),
      );
      const done = await settle(service, workload.id);
      expect(done).toMatchObject({ state: 'failed', reason: 'task_error', message: 'exceeded runSeconds=1' });
      expect(Date.parse(done.finishedAt!) - Date.parse(done.startedAt!)).toBeLessThan(3_000);
    });

    it('refuses a workload for a backend this service does not run, storing nothing', async () => {
      const bad = input({ key: 'nomad', backend: 'nomad', command: ['true'] });
      await expect(service.submit(bad)).rejects.toThrow(InvalidInputError);
      await expect(service.submit(bad)).rejects.toThrow(/backend: 'nomad' is not enabled.*enabled: pool, local/);
      await expect(service.getWorkload(bad.key)).rejects.toThrow(/does not exist/);
    });

    it('retries a submit error as new attempts, then fails with the reason and the message', async () => {
      const file = join(scratch, `not-a-dir-${n}`);
      writeFileSync(file, '');
      const broken = await openService({ ...base, localRunDir: join(file, 'runs') });
      try {
        const { workload } = await broken.submit(input({ key: 'broken', command: ['true'], maxInfraRetries: 2 }));
        const done = await settle(broken, workload.id);
        expect(done).toMatchObject({ state: 'failed', reason: 'submit_error', attempt: 3, infraRetries: 2 });
        expect(done.message).toMatch(/could not start the run in .*not-a-dir.*ENOTDIR/);
      } finally {
        await broken.close();
      }
    });

    it('a reconcile asked about some attempts leaves the runs it was not asked about alone', async () => {
      const marker = join(scratch, `survivor-${n}`);
      const { workload } = await service.submit(
        input({ key: 'survivor', command: ['sh', '-c', `sleep 1.5; echo done >> ${marker}`] }),
      );
      await waitUntil(async () => (await settleState(service, workload.id)) === 'running');
      const local = service.backends.get('local')!;
      // As the dispatcher asks after one ambiguous submit, or the leader about a dead instance's attempts.
      const verdicts = await local.reconcile([
        {
          workloadId: '00000000-0000-4000-8000-000000000001',
          attempt: 1,
          ref: null,
          state: 'submitting',
          claimedAt: 0,
        },
      ]);
      expect(verdicts.map((v) => v.verdict)).toEqual(['absent']);
      // Asked about again while it runs: the run it watches already, as it is.
      expect(
        (
          await local.reconcile([{ workloadId: workload.id, attempt: 1, ref: null, state: 'running', claimedAt: 0 }])
        )[0],
      ).toMatchObject({ verdict: 'attached' });
      expect(await settle(service, workload.id)).toMatchObject({ state: 'succeeded', attempt: 1 });
      expect(readFileSync(marker, 'utf8')).toBe('done\n');
    });

    it("the leader never takes its own claims for a dead instance's, even when its heartbeat is late", async () => {
      // Both slots busy, so the third stays queued; then it is made to look as the dispatcher leaves a row
      // between its claim and its submit: `submitting`, claimed by this instance, no run yet.
      const busy = await service.submitBatch([
        input({ key: 'busy1', command: ['sleep', '2'] }),
        input({ key: 'busy2', command: ['sleep', '2'] }),
      ]);
      for (const r of busy) await waitUntil(async () => (await settleState(service, r.workload.id)) === 'running');
      const { workload } = await service.submit(input({ key: 'mid-submit', command: ['true'] }));
      const id = service.membership.id;
      const updated = await service.db.query(
        `UPDATE workloads SET state = 'submitting', claimed_by = $2::uuid, claimed_at = now()
         WHERE id = $1::uuid AND state = 'queued' RETURNING id`,
        [workload.id, id],
      );
      expect(updated.rows).toHaveLength(1);
      await service.db.query(`UPDATE instances SET heartbeat_at = now() - interval '1 hour' WHERE id = $1::uuid`, [id]);
      await service.reap();
      const row = await service.db.query<{ state: string; claimed_by: string }>(
        'SELECT state, claimed_by FROM workloads WHERE id = $1::uuid',
        [workload.id],
      );
      expect(row.rows[0]).toEqual({ state: 'submitting', claimed_by: id });
      // Hand it back as the dispatcher would, so the suite's service is left as it was.
      await service.db.query(
        `UPDATE workloads SET state = 'queued', claimed_by = NULL, claimed_at = NULL WHERE id = $1::uuid`,
        [workload.id],
      );
      await service.db.query('UPDATE instances SET heartbeat_at = now() WHERE id = $1::uuid', [id]);
      for (const r of busy) expect((await settle(service, r.workload.id)).state).toBe('succeeded');
    });

    it('after a restart, re-attaches to runs still going, reads how the others ended, and loses none', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'airfleet-restart-'));
      const runDir = join(dataDir, 'runs');
      const config = { ...base, dataDir, localRunDir: runDir, localConcurrency: 3 };
      const first = await openService(config);
      const again = { ...config, ...(first.config.databaseUrl ? { databaseUrl: first.config.databaseUrl } : {}) };
      const submitted = await first.submitBatch([
        // Still running when the service is back: output before and after the restart in one log.
        input({ key: 'long', command: ['sh', '-c', 'echo one; sleep 2; echo two; exit 4'] }),
        // Ends while the service is down.
        input({ key: 'short', command: ['sh', '-c', 'sleep 0.5; echo short'] }),
        // Killed while the service is down: nobody knows how it ended.
        input({ key: 'victim', command: ['sleep', '30'] }),
        // No room left: stays queued, then is left `submitting` as by a crash between claim and submit.
        input({ key: 'claimed', command: ['sh', '-c', 'echo claimed'] }),
      ]);
      const [long, short, victim, claimed] = submitted.map((r) => r.workload.id) as [string, string, string, string];
      for (const id of [long, short, victim]) await waitUntil(async () => (await settleState(first, id)) === 'running');
      await first.db.query(`UPDATE workloads SET state = 'submitting' WHERE id = $1::uuid AND state = 'queued'`, [
        claimed,
      ]);
      await first.close();
      const victimPid = findRunProcesses(runDir).get(`${victim}.1`);
      expect(victimPid).toBeGreaterThan(0);
      process.kill(-victimPid!, 'SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const second = await openService(again);
      try {
        expect(await settle(second, short)).toMatchObject({ state: 'succeeded', attempt: 1 });
        expect(await logText(second, short, 'stdout')).toBe('short\n');
        expect(await settle(second, victim)).toMatchObject({ state: 'failed', reason: 'lost', attempt: 1 });
        // Never submitted, so queued again as the same attempt and run once.
        expect(await settle(second, claimed)).toMatchObject({ state: 'succeeded', attempt: 1 });
        expect(await settle(second, long)).toMatchObject({ state: 'failed', exitCode: 4, attempt: 1 });
        expect(await logText(second, long, 'stdout')).toBe('one\ntwo\n');
      } finally {
        await second.close();
      }
    });
  });
}

async function settleState(service: ExecutorService, id: string): Promise<WorkloadState> {
  return (await service.getWorkload(id)).state;
}

/** Waits for the workload to finish and returns it. */
async function settle(service: ExecutorService, id: string): Promise<Workload> {
  let last: Workload | null = null;
  await waitUntil(async () => {
    last = await service.getWorkload(id);
    return ['succeeded', 'failed', 'cancelled'].includes(last.state);
  });
  return last!;
}

async function logText(service: ExecutorService, id: string, stream: 'stdout' | 'stderr'): Promise<string> {
  const slice = await service.readLogs({ idOrKey: id, stream, offset: 0, maxBytes: 1 << 20, waitMs: 0 });
  return slice.data.toString('utf8');
}

/**
 * The states the change feed recorded for an ended workload, once the feed shows its end: the feed's numbering
 * can trail the committed row by a moment (service/feed.ts), so a read right after the end may stop short.
 */
async function statesOf(service: ExecutorService, id: string): Promise<string[]> {
  return waitFor(async () => {
    const states = (await service.readFeed(0, 10_000, 0)).filter((e) => e.workloadId === id).map((e) => e.state);
    return ['succeeded', 'failed', 'cancelled'].includes(states.at(-1) ?? '') ? states : null;
  });
}
