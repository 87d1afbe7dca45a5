import { type Decision, decide } from '../../src/autoscaler/decide.ts';
import { parseServiceConfig } from '../../src/config.ts';
import { ConfigError } from '../../src/errors.ts';

const TICK_S = 5;

const basePool = {
  name: 'burst',
  queues: ['burst'],
  slotsPerWorker: 2,
  minWorkers: 1,
  maxWorkers: 6,
  scaleOutCooldownSeconds: 10,
  scaleInCooldownSeconds: 60,
  driver: { kind: 'swarm' as const, service: 'burst-workers' },
};

function pool(over: Record<string, unknown> = {}) {
  return parseServiceConfig({ pools: [{ ...basePool, ...over }] }).pools[0]!;
}

interface Step {
  t: number;
  backlog: number;
  current: number;
  scalingIn: number;
  decision: Decision;
}

/**
 * Drives the decision over a recorded backlog series (slots queued + running, one sample per tick), with a
 * platform that adds workers at once and removes drained ones after `drainTicks` (or never: the drain times
 * out after `drainTimeoutTicks` and the workers go back to work, as the autoscaler does).
 */
function simulate(
  p: ReturnType<typeof pool>,
  series: readonly number[],
  options: { start?: number; drainTicks?: number; drainTimeoutTicks?: number } = {},
): Step[] {
  let current = options.start ?? p.minWorkers;
  let scalingIn = 0;
  let drainAge = 0;
  let lastOut: number | null = null;
  let lastIn: number | null = null;
  const steps: Step[] = [];
  series.forEach((backlog, i) => {
    const now = i * TICK_S * 1000;
    if (scalingIn > 0) {
      drainAge++;
      if (options.drainTicks !== undefined && drainAge >= options.drainTicks) {
        current -= scalingIn;
        scalingIn = 0;
        lastIn = now;
      } else if (options.drainTimeoutTicks !== undefined && drainAge >= options.drainTimeoutTicks) {
        scalingIn = 0; // put back to work; the cooldown starts again from here
        lastIn = now;
      }
    }
    const decision = decide(p, {
      queuedSlots: backlog,
      runningSlots: 0,
      current,
      scalingIn,
      nowMs: now,
      lastScaleOutMs: lastOut,
      lastScaleInMs: lastIn,
    });
    steps.push({ t: i * TICK_S, backlog, current, scalingIn, decision });
    if (decision.cancelScaleIn) scalingIn = 0;
    if (decision.action === 'scale_out') {
      current = decision.target;
      lastOut = now;
    } else if (decision.action === 'scale_in') {
      scalingIn = current - decision.target;
      drainAge = 0;
      lastIn = now;
    }
  });
  return steps;
}

const actions = (steps: Step[]) => steps.filter((s) => s.decision.action !== 'hold').map((s) => s.decision.action);

/** Direction changes: an `in` after an `out` or the reverse. */
function reversals(steps: Step[]): number {
  const a = actions(steps);
  return a.filter((x, i) => i > 0 && x !== a[i - 1]).length;
}

function expectBounds(p: ReturnType<typeof pool>, steps: Step[]): void {
  for (const s of steps) {
    expect(s.decision.target).toBeGreaterThanOrEqual(p.minWorkers);
    expect(s.decision.target).toBeLessThanOrEqual(p.maxWorkers);
    expect(s.decision.desired).toBeGreaterThanOrEqual(p.minWorkers);
    expect(s.decision.desired).toBeLessThanOrEqual(p.maxWorkers);
    // A scale-in never leaves less capacity than the backlog needs (running slots are part of it).
    if (s.decision.action === 'scale_in') {
      expect(s.decision.target * p.slotsPerWorker).toBeGreaterThanOrEqual(
        Math.min(s.backlog, p.maxWorkers * p.slotsPerWorker),
      );
    }
  }
}

// Recorded backlog series (slots queued + running, every 5 s) of the runs the issue describes.
const STEADY = Array.from({ length: 60 }, (_, i) => 7 + (i % 3 === 0 ? 1 : 0)); // 7-8 slots, noisy
// 40 tasks of 10 s arrive at once on a pool of 2-slot workers, drain over ~1 min, then nothing.
const BURST = [0, 0, 40, 40, 38, 30, 22, 16, 12, 8, 4, 2, 0, ...Array.from({ length: 30 }, () => 0)];
// Hovering across a worker boundary (8 slots = 4 workers exactly, 9 needs 5).
const FLAPPING = Array.from({ length: 80 }, (_, i) => (i % 2 === 0 ? 9 : 8));

describe('autoscaler decision over recorded backlog series', () => {
  it('steady backlog: one adjustment, then holds (no oscillation)', () => {
    const p = pool();
    const steps = simulate(p, STEADY, { drainTicks: 1 });
    expectBounds(p, steps);
    expect(actions(steps)).toEqual(['scale_out']);
    expect(steps.at(-1)!.decision.target).toBe(4);
  });

  it('burst: scales out to the max at once, back to the min after the cooldown, once each way', () => {
    const p = pool();
    const steps = simulate(p, BURST, { drainTicks: 2 });
    expectBounds(p, steps);
    const firstOut = steps.findIndex((s) => s.decision.action === 'scale_out');
    expect(steps[firstOut]!.t).toBe(10); // the first sample with a backlog
    expect(steps[firstOut]!.decision.target).toBe(p.maxWorkers);
    // The backlog decreases while the burst drains: still no scale-in inside the cooldown after the scale-out.
    const firstIn = steps.findIndex((s) => s.decision.action === 'scale_in');
    expect(steps[firstIn]!.t - steps[firstOut]!.t).toBeGreaterThanOrEqual(p.scaleInCooldownSeconds);
    expect(reversals(steps)).toBeLessThanOrEqual(1);
    const last = steps.at(-1)!;
    expect(last.current).toBe(p.minWorkers);
  });

  it('flapping at the threshold: hysteresis keeps the size; no worker added and removed in turn', () => {
    const p = pool({ slotsPerWorker: 2, hysteresisSlots: 2 });
    const steps = simulate(p, FLAPPING, { start: 4, drainTicks: 1 });
    expectBounds(p, steps);
    expect(actions(steps)).toEqual(['scale_out']); // 9 slots need 5 workers; 8 with 2 to spare does not fit 4
    expect(steps.at(-1)!.current).toBe(5);
  });

  it('without hysteresis the same series would flap: the test can tell', () => {
    const p = pool({ slotsPerWorker: 2, hysteresisSlots: 0, scaleInCooldownSeconds: 0, scaleOutCooldownSeconds: 0 });
    const steps = simulate(p, FLAPPING, { start: 4, drainTicks: 1 });
    expect(reversals(steps)).toBeGreaterThan(10);
  });

  it('drains that time out: the scale-in is retried only once per cooldown, capacity never drops', () => {
    const p = pool({ scaleInCooldownSeconds: 30 });
    const series = [20, ...Array.from({ length: 59 }, () => 0)];
    const steps = simulate(p, series, { drainTimeoutTicks: 4 });
    expectBounds(p, steps);
    const ins = steps.filter((s) => s.decision.action === 'scale_in');
    // One attempt, then wait out the 4-tick drain, then the cooldown (6 ticks) before the next.
    const gaps = ins.slice(1).map((s, i) => s.t - ins[i]!.t);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(4 * TICK_S + p.scaleInCooldownSeconds);
    // Nothing was ever removed: every drain timed out.
    expect(Math.min(...steps.slice(1).map((s) => s.current))).toBe(p.maxWorkers);
    expect(ins.length).toBeGreaterThanOrEqual(2);
    expect(steps.filter((s) => s.decision.action === 'hold' && s.scalingIn > 0).length).toBeGreaterThan(0);
  });

  it('a backlog that comes back cancels a scale-in under way, whatever the cooldown', () => {
    const p = pool();
    const d = decide(p, {
      queuedSlots: 10,
      runningSlots: 0,
      current: 5,
      scalingIn: 2,
      nowMs: 1_000,
      lastScaleOutMs: 0,
      lastScaleInMs: 500,
    });
    expect(d).toMatchObject({ action: 'hold', cancelScaleIn: true });
  });

  it('bounds win over cooldowns: below the minimum grows now; above the maximum shrinks', () => {
    const p = pool({ minWorkers: 2 });
    const at = { queuedSlots: 0, runningSlots: 0, scalingIn: 0, nowMs: 1_000, lastScaleOutMs: 900, lastScaleInMs: 900 };
    expect(decide(p, { ...at, current: 0 })).toMatchObject({ action: 'scale_out', target: 2 });
    expect(decide(p, { ...at, current: 9, queuedSlots: 100 })).toMatchObject({ action: 'scale_in', target: 6 });
  });

  it('running slots count: a pool never shrinks under its own running tasks', () => {
    const p = pool({ scaleInCooldownSeconds: 0 });
    const d = decide(p, {
      queuedSlots: 0,
      runningSlots: 7,
      current: 6,
      scalingIn: 0,
      nowMs: 0,
      lastScaleOutMs: null,
      lastScaleInMs: null,
    });
    expect(d).toMatchObject({ action: 'scale_in', target: 4 }); // ceil((7 + 1 hysteresis) / 2)
  });
});

describe('pool configuration', () => {
  const bad = (pools: unknown[]) => {
    try {
      parseServiceConfig({ pools: pools as never });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error('accepted');
  };

  it('lists every problem with its path and what to do', () => {
    const message = bad([
      { ...basePool, minWorkers: 5, maxWorkers: 3, slotsPerWorker: 0 },
      { ...basePool, name: 'Bad Name', queues: [] },
    ]);
    expect(message).toContain('pools.0.maxWorkers: must be at least minWorkers (5); got 3');
    expect(message).toContain('pools.0.slotsPerWorker');
    expect(message).toContain('pools.1.name: pool names are 1 to 63 characters');
    expect(message).toContain('pools.1.queues: give the pool at least one queue');
  });

  it('refuses two pools on one queue, duplicate names, unknown drivers and unknown fields', () => {
    expect(bad([basePool, { ...basePool, name: 'other' }])).toContain(
      "pools.1.queues: queue 'burst' is already served by pool 'burst'",
    );
    expect(bad([basePool, { ...basePool, queues: ['x'] }])).toContain("pool 'burst' is also pools[0]");
    expect(bad([{ ...basePool, driver: { kind: 'kubernetes' } }])).toContain('pools.0.driver.kind');
    expect(bad([{ ...basePool, driver: { kind: 'swarm', service: 'no spaces' } }])).toContain(
      'pools.0.driver.service: a Docker service name',
    );
    expect(bad([{ ...basePool, cooldown: 5 }])).toContain('cooldown');
  });

  it('defaults: hysteresis half a worker, cooldowns, drain timeout', () => {
    expect(
      pool({ slotsPerWorker: 5, scaleOutCooldownSeconds: undefined, scaleInCooldownSeconds: undefined }),
    ).toMatchObject({
      hysteresisSlots: 3,
      scaleOutCooldownSeconds: 30,
      scaleInCooldownSeconds: 120,
      drainTimeoutSeconds: 600,
    });
  });
});
