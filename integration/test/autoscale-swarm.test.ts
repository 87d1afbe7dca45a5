import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { ADMIN_TOKEN, ServiceProcess, waitFor } from '../src/airfleet-process.ts';
import { launchChromium, screenshot } from '../src/browser.ts';
import { projectImage, testLabels } from '../src/docker-env.ts';
import { freePort } from '../src/ports.ts';
import { createWorkerService, isSwarmManager, replicasOf, serviceTasks } from '../src/swarm-workers.ts';
import { killedTasks, markerCommand, startCount, tasksEnded } from '../src/task-markers.ts';

/**
 * The autoscaler on a real Docker Swarm: a burst on queue `burst` scales its worker service from the minimum
 * to the maximum, every task runs exactly once, and once the burst is over the service goes back to the
 * minimum by removing drained workers only; the `steady` pool beside it keeps its own size.
 *
 * Sizes: the issue's burst by default, 40 tasks of 10 s on workers of one slot, at most 8 of them, an 8 s
 * scale-in cooldown (95 to 145 s on the 2-core CI machine). A smaller run for a quick check keeps every
 * assertion: AUTOSCALE_TASKS=24 AUTOSCALE_TASK_SECONDS=5 AUTOSCALE_MAX_WORKERS=4 (60 to 90 s);
 * AUTOSCALE_COOLDOWN_SECONDS sets the cooldown.
 */
const TASKS = Number(process.env.AUTOSCALE_TASKS ?? 40);
const TASK_SECONDS = Number(process.env.AUTOSCALE_TASK_SECONDS ?? 10);
const MAX_WORKERS = Number(process.env.AUTOSCALE_MAX_WORKERS ?? 8);
const COOLDOWN_SECONDS = Number(process.env.AUTOSCALE_COOLDOWN_SECONDS ?? 8);
const ISSUE_SIZES = TASKS === 40 && TASK_SECONDS === 10;

const docker = new Docker();
const run = testLabels()
  ['airfleet.test']!.replace(/[^a-z0-9]/gi, '')
  .slice(-10);
const BURST_SERVICE = `af-burst-${run}`;
const STEADY_SERVICE = `af-steady-${run}`;

interface Sample {
  at: number;
  burstReplicas: number;
  burstRunning: number;
  steadyReplicas: number;
  steadyRunning: number;
}

describe('autoscaler on Docker Swarm', () => {
  let service: ServiceProcess;
  let markers: string;
  let secret: Docker.Secret | null = null;
  const started = Date.now();

  beforeAll(async () => {
    if (!(await isSwarmManager(docker))) {
      throw new Error(
        'this suite needs the local Docker engine to be a Swarm manager: run `docker swarm init --advertise-addr 127.0.0.1` (.ci/run does)',
      );
    }
    markers = mkdtempSync(join(tmpdir(), 'airfleet-autoscale-'));
    chmodSync(markers, 0o777); // the image's worker runs as its own user
    const pool = (name: string, queue: string, svc: string, max: number) => ({
      name,
      queues: [queue],
      slotsPerWorker: 1,
      minWorkers: 1,
      maxWorkers: max,
      scaleOutCooldownSeconds: 2,
      scaleInCooldownSeconds: COOLDOWN_SECONDS,
      hysteresisSlots: 0,
      drainTimeoutSeconds: 60,
      driver: { kind: 'swarm', service: svc },
    });
    // The workers' services start while the service does (they retry registering until it answers): the
    // enrollment token is given to the service by value, and the port is chosen first.
    const port = await freePort();
    const token = `aft_${randomBytes(9).toString('hex')}_${randomBytes(24).toString('base64url')}`;
    const starting = ServiceProcess.start({
      port,
      // Generous timeouts: at a load average of 20 a worker's heartbeat can arrive seconds late, and a late
      // heartbeat sent before a lease arrived must not read as the worker denying it (lease-ack timeout).
      heartbeatIntervalMs: 1_000,
      heartbeatTimeoutMs: 30_000,
      env: {
        AIRFLEET_LEASE_ACK_TIMEOUT_MS: '15000',
        AIRFLEET_AUTOSCALE_INTERVAL_MS: '1000',
        AIRFLEET_ENROLL_TOKEN: token,
        AIRFLEET_POOLS: JSON.stringify([
          pool('burst', 'burst', BURST_SERVICE, MAX_WORKERS),
          pool('steady', 'steady', STEADY_SERVICE, 3),
        ]),
      },
    }).then((started) => {
      service = started; // for afterAll, even if what follows fails
      return started;
    });
    const created = await docker.createSecret({
      Name: `af-enroll-${run}`,
      Labels: testLabels(),
      Data: Buffer.from(token).toString('base64'),
    });
    secret = docker.getSecret(created.id);
    const common = {
      image: projectImage('executor'),
      apiUrl: `http://127.0.0.1:${port}`,
      tokenSecret: { id: created.id, name: `af-enroll-${run}` },
      concurrency: 1,
      replicas: 1,
      markers,
    };
    await createWorkerService(docker, { ...common, name: BURST_SERVICE, queue: 'burst', pool: 'burst' });
    await createWorkerService(docker, { ...common, name: STEADY_SERVICE, queue: 'steady', pool: 'steady' });
    service = await starting;
    // Both minimum workers registered before the burst.
    await waitFor(
      'the two minimum workers to register',
      async () => {
        const { workers } = await service.client.request<{
          workers: Array<{ state: string; labels: Record<string, string> }>;
        }>('GET', '/v1/workers');
        const live = workers.filter((w) => w.state === 'idle');
        return (
          live.some((w) => w.labels['airfleet.pool'] === 'burst') &&
          live.some((w) => w.labels['airfleet.pool'] === 'steady')
        );
      },
      90_000,
      () => service.process!.tail(),
    );
  }, 180_000);

  afterAll(async () => {
    for (const name of [BURST_SERVICE, STEADY_SERVICE])
      await docker
        .getService(name)
        .remove()
        .catch(() => undefined);
    await secret?.remove().catch(() => undefined);
    await service?.stop();
    if (markers) rmSync(markers, { recursive: true, force: true });
  });

  it('a burst scales out to the max and back to the min, every task once, no task killed; the other pool keeps its size', async () => {
    const samples: Sample[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [burstTasks, steadyTasks, burstReplicas, steadyReplicas] = await Promise.all([
          serviceTasks(docker, BURST_SERVICE),
          serviceTasks(docker, STEADY_SERVICE),
          replicasOf(docker, BURST_SERVICE),
          replicasOf(docker, STEADY_SERVICE),
        ]);
        const running = (ts: typeof burstTasks) => ts.filter((t) => t.Status.State === 'running').length;
        samples.push({
          at: Date.now(),
          burstReplicas,
          burstRunning: running(burstTasks),
          steadyReplicas,
          steadyRunning: running(steadyTasks),
        });
        await new Promise((r) => setTimeout(r, 500));
      }
    })();

    const task = (key: string, queue: string) => ({
      key,
      queue,
      command: markerCommand(key, TASK_SECONDS),
    });
    const burstAt = Date.now();
    const keys = Array.from({ length: TASKS }, (_, i) => `burst-${run}-${i}`);
    await service.client.request('POST', '/v1/workloads/batch', {
      body: { workloads: [...keys.map((k) => task(k, 'burst')), task(`steady-${run}`, 'steady')] },
    });
    const all = [...keys, `steady-${run}`];

    const finals = await tasksEnded(service, all, 240_000);
    const doneAt = Date.now();
    // Back to the minimum: one replica asked for and one running.
    await waitFor(
      'the burst service to scale back to the minimum',
      async () => {
        const last = samples.at(-1);
        return last && last.at > doneAt && last.burstReplicas === 1 && last.burstRunning === 1;
      },
      120_000,
      () => service.process!.tail(40),
    );
    const backAt = samples.at(-1)!.at;
    sampling = false;
    await sampler;

    const firstExtra = samples.find((s) => s.at >= burstAt && s.burstRunning >= 2);
    const peak = Math.max(...samples.map((s) => s.burstRunning));
    // A task that did not succeed, or started twice, counts as killed (task-markers.ts).
    const starts = (k: string) => startCount(markers, k);
    const killed = killedTasks(markers, finals);
    // Which burst workers left, and how: one removed by the scale-in was chosen (its maintenance comment says
    // so), drained and left by itself; one Swarm stopped in its place would have left without the comment.
    const { workers } = await service.client.request<{
      workers: Array<{
        name: string;
        state: string;
        labels: Record<string, string>;
        maintenanceComment: string | null;
      }>;
    }>('GET', '/v1/workers');
    const burstGone = workers.filter(
      (w) => w.labels['airfleet.pool'] === 'burst' && w.state !== 'idle' && w.state !== 'running',
    );
    const figures = {
      sizes: `${TASKS} tasks of ${TASK_SECONDS} s, max ${MAX_WORKERS} workers, ${COOLDOWN_SECONDS} s scale-in cooldown${
        ISSUE_SIZES
          ? " (the issue's burst)"
          : " (scaled down by AUTOSCALE_*; the issue's burst is the default: 40 × 10 s, max 8)"
      }`,
      burstToFirstExtraWorkerRunningSeconds: firstExtra ? (firstExtra.at - burstAt) / 1000 : null,
      peakWorkers: peak,
      lastTaskDoneToMinSeconds: (backAt - doneAt) / 1000,
      tasksKilled: killed.length,
      leasesHandedBackUnstartedAndRetried: finals.filter((w) => w.attempt > 1).length,
      workersRemovedOnScaleIn: burstGone.length,
      suiteSeconds: (Date.now() - started) / 1000,
    };
    console.info(`autoscale-swarm figures: ${JSON.stringify(figures, null, 2)}`);

    // Every task ran exactly once and succeeded: one start and one end marker each.
    expect(
      killed.map((w) => `${w.key}: ${w.state} attempt ${w.attempt} ${w.reason ?? ''} starts ${starts(w.key)}`),
    ).toEqual([]);
    for (const k of all) {
      expect(existsSync(join(markers, `${k}.start`))).toBe(true);
      expect(
        readFileSync(join(markers, `${k}.start`), 'utf8')
          .trim()
          .split('\n'),
      ).toHaveLength(1);
      expect(readFileSync(join(markers, `${k}.end`), 'utf8').trim()).toBe('done');
    }
    // Out to the max, never past it; back to the min.
    expect(firstExtra).toBeDefined();
    expect(peak).toBe(MAX_WORKERS);
    expect(Math.max(...samples.map((s) => s.burstReplicas))).toBe(MAX_WORKERS);
    expect(samples.at(-1)!.burstReplicas).toBe(1);
    // Scale-in removed exactly the workers it chose and drained: each left cleanly (offline) with the
    // autoscaler's maintenance comment, and Swarm never stopped another one in their place.
    expect(burstGone.length).toBeGreaterThanOrEqual(MAX_WORKERS - 1);
    expect(burstGone.map((w) => `${w.state}: ${w.maintenanceComment}`)).toEqual(
      burstGone.map(() => 'offline: autoscaler: scale-in of pool burst'),
    );
    expect(service.process!.output.join('')).not.toContain('Swarm shut down running worker tasks');
    // The steady pool kept its one worker throughout.
    expect(new Set(samples.map((s) => s.steadyReplicas))).toEqual(new Set([1]));
    const pools = await service.client.request<{
      pools: Array<{
        name: string;
        status: { target: number } | null;
        history: Array<{ at: string; desired: number; actual: number }>;
      }>;
    }>('GET', '/v1/pools');
    expect(pools.pools.map((p) => [p.name, p.status?.target])).toEqual([
      ['burst', 1],
      ['steady', 1],
    ]);
    // What the dashboard charts: the burst pool's desired and actual rose to the max and came back.
    const history = pools.pools.find((p) => p.name === 'burst')!.history;
    expect(Math.max(...history.map((h) => h.desired))).toBe(MAX_WORKERS);
    expect(Math.max(...history.map((h) => h.actual))).toBe(MAX_WORKERS);
    expect(history.at(-1)).toMatchObject({ desired: 1, actual: 1 });

    // The same history as an operator sees it: the dashboard's chart of the burst pool, in Chromium.
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(`${service.url}/ui/`);
      await page.getByLabel('API token').fill(ADMIN_TOKEN);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Workers', level: 1 }).waitFor();
      await page.goto(`${service.url}/ui/#/queues`);
      const chart = page.getByRole('img', { name: /^Workers, desired and actual\. Latest: / }).first();
      await chart.waitFor({ timeout: 30_000 });
      expect(await chart.getAttribute('aria-label')).toBe('Workers, desired and actual. Latest: desired: 1; actual: 1');
      // The value axis of a count: whole numbers, none twice, reaching the peak.
      const axis = (await chart.locator('text.chart-label').allTextContents()).filter((t) => /^[\d.]+$/.test(t));
      expect(new Set(axis).size).toBe(axis.length);
      expect(axis.every((t) => Number.isInteger(Number(t)))).toBe(true);
      expect(Math.max(...axis.map(Number))).toBeGreaterThanOrEqual(MAX_WORKERS);
      await screenshot(page, 'pools-swarm');
    } finally {
      await browser.close();
    }
  }, 480_000);
});
