import type { Backend } from '../backends/backend.ts';
import { SubmitError } from '../backends/backend.ts';
import type { BackendName, Workload } from '../domain/workload.ts';
import { claimForSubmit, markSubmitted } from '../store/workloads.ts';
import type { Lifecycle } from './lifecycle.ts';
import { Waiter } from './waiters.ts';

export interface DispatcherOptions {
  /** Most workloads claimed per pass (one statement). */
  batchSize: number;
  /** Most backend submit calls in flight at once, per backend. */
  submitConcurrency: number;
  /** Longest sleep between passes when nothing wakes the loop, ms (a lost NOTIFY costs at most this). */
  idleMs: number;
}

/**
 * Hands queued workloads of push backends to their backend: one loop per backend claims a batch with
 * SKIP LOCKED (moving it to `submitting` in the same statement), submits each, and records the backend's
 * reference (`pending`). Loops sleep until a queue signal for their backend arrives, in-process or by
 * NOTIFY from another instance, or until `idleMs` passes.
 */
export class Dispatcher {
  private readonly life: Lifecycle;
  private readonly backends: Backend[];
  private readonly options: DispatcherOptions;
  private readonly sleepers = new Map<BackendName, Waiter>();
  private readonly loops: Promise<void>[] = [];
  private closed = false;

  constructor(life: Lifecycle, backends: Backend[], options: DispatcherOptions) {
    this.life = life;
    this.backends = backends.filter((b) => b.mode === 'push');
    this.options = options;
  }

  start(): void {
    for (const backend of this.backends) this.loops.push(this.loop(backend));
  }

  /** There may be work (or capacity) for `backend`, or for every push backend when none is named. */
  wake(backend?: string): void {
    for (const [name, sleeper] of this.sleepers) if (!backend || name === backend) sleeper.notify();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    await Promise.all(this.loops);
  }

  private async loop(backend: Backend): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      let claimed = 0;
      try {
        claimed = await this.pass(backend);
        failures = 0;
      } catch (error) {
        failures++;
        this.life.logger.warn(
          { backend: backend.name, err: (error as Error).message },
          'dispatch pass failed; retrying after a pause',
        );
      }
      if (claimed > 0 && failures === 0) continue; // more may be waiting: claim again at once
      const sleeper = new Waiter(failures > 0 ? Math.min(30_000, 250 * 2 ** failures) : this.options.idleMs);
      this.sleepers.set(backend.name, sleeper);
      if (!this.closed) await sleeper.promise;
      this.sleepers.delete(backend.name);
    }
  }

  /** One claim and the submits of what it claimed. Returns how many were claimed. */
  private async pass(backend: Backend): Promise<number> {
    const room = Math.min(this.options.batchSize, backend.freeCapacity?.() ?? this.options.batchSize);
    if (room <= 0) return 0;
    const claimed = await claimForSubmit(this.life.db, backend.name, room);
    if (claimed.length === 0) return 0;
    this.life.feed.poke();
    let next = 0;
    const lanes = Array.from({ length: Math.min(this.options.submitConcurrency, claimed.length) }, async () => {
      while (next < claimed.length) await this.submitOne(backend, claimed[next++]!);
    });
    await Promise.all(lanes);
    return claimed.length;
  }

  private async submitOne(backend: Backend, w: Workload): Promise<void> {
    let ref: string | null;
    try {
      ({ ref } = await backend.submit(w, w.attempt));
    } catch (error) {
      const failure =
        error instanceof SubmitError
          ? error
          : new SubmitError(`${backend.name} could not take the job: ${(error as Error).message}`);
      this.life.logger.warn(
        { workload: w.id, attempt: w.attempt, backend: backend.name, err: failure.message },
        'submit failed',
      );
      const result = await this.life.db.tx((q) => this.life.failAttempt(q, w, failure.reason, false, failure.message));
      if (result) this.life.afterChange(result);
      return;
    }
    this.life.metrics.dispatchLatency.observe({ queue: w.queue }, (Date.now() - Date.parse(w.queuedAt)) / 1000);
    // The job exists now. Should recording it fail (database down), the row stays `submitting` with the
    // job's name carrying id and attempt, which is exactly what reconcile looks for after a restart.
    const marked = await markSubmitted(this.life.db, w.id, w.attempt, ref);
    this.life.feed.poke();
    if (marked?.cancelRequested) {
      // Cancelled while the submit was in flight: the cancel found no job then, so stop it now.
      await backend.cancel({ workloadId: w.id, attempt: w.attempt, ref });
    }
  }
}
