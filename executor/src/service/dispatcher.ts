import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend } from '../backends/backend.ts';
import { SubmitError } from '../backends/backend.ts';
import type { BackendName, Workload } from '../domain/workload.ts';
import { Waiter } from '../lib/waiters.ts';
import type { Queryable } from '../store/db.ts';
import { claimForSubmit, markSubmitted, releaseClaim, type WithSealed, withoutSealed } from '../store/workloads.ts';
import type { Lifecycle } from './lifecycle.ts';

export interface DispatcherOptions {
  /** Most workloads claimed per pass (one statement). */
  batchSize: number;
  /** Most backend submit calls in flight at once, per backend. */
  submitConcurrency: number;
  /** Longest sleep between passes when nothing wakes the loop, ms (a lost NOTIFY costs at most this). */
  idleMs: number;
}

/** Claims made inside a submission's transaction, to submit once it committed (Dispatcher.claimDirect). */
export interface DirectClaim {
  backend: Backend;
  claimed: Array<WithSealed<Workload>>;
}

export interface DispatcherDeps {
  /** This instance: its id goes on every claim; it claims and submits only while its row is fresh. */
  instance: { readonly id: string; healthy(): boolean };
  /** Opens a claimed workload's sealed secret environment, for the backend to deliver. */
  openSecrets(workloadId: string, sealed: Buffer | null): Record<string, string>;
  /** A stop was asked for an attempt this instance just submitted: send it now. */
  stopsDue(): void;
}

/**
 * Hands queued workloads of push backends to their backend: one loop per backend claims a batch with
 * SKIP LOCKED (moving it to `submitting` under this instance's id in the same statement), submits each, and
 * records the backend's reference (`pending`). Loops sleep until a queue signal for their backend arrives,
 * in-process or by NOTIFY from another instance, or until `idleMs` passes.
 *
 * A submit that failed for sure (SubmitError) fails the attempt (retried as a new one if retries are left).
 * One that failed in a way that leaves it unknown whether the job exists (a timeout, a dropped connection) is
 * never resubmitted blindly: the backend is asked (reconcile) until it can tell.
 */
export class Dispatcher {
  private readonly life: Lifecycle;
  private readonly backends: Backend[];
  private readonly options: DispatcherOptions;
  private readonly deps: DispatcherDeps;
  private readonly sleepers = new Map<BackendName, Waiter>();
  private readonly loops: Promise<void>[] = [];
  private readonly stopping = new AbortController();
  private closed = false;
  /** Per backend: room promised to submissions' own claims (claimDirect) and not yet submitted. */
  private readonly reserved = new Map<BackendName, number>();
  /** Backends whose loop is in a pass now (its claims are not yet in the backend's free capacity). */
  private readonly passing = new Set<BackendName>();
  /** Submits of claims made in submissions' transactions, for close() to wait on. */
  private readonly direct = new Set<Promise<void>>();

  constructor(life: Lifecycle, backends: Backend[], options: DispatcherOptions, deps: DispatcherDeps) {
    this.life = life;
    this.backends = backends.filter((b) => b.mode === 'push');
    this.options = options;
    this.deps = deps;
  }

  start(): void {
    for (const backend of this.backends) this.loops.push(this.loop(backend));
  }

  /** There may be work (or capacity) for `backend`, or for every push backend when none is named. */
  wake(backend?: string): void {
    for (const [name, sleeper] of this.sleepers) if (!backend || name === backend) sleeper.notify();
  }

  /**
   * Claims for `backend` inside a submission's own transaction `q`, right after its insert: the claim a
   * pass would make next, minus one commit and one wake-up on the path of every task's start. Only while
   * the backend's loop sleeps (so the two never claim the same room) and this instance may claim; the same
   * statement as a pass, in the same order, so older queued work still goes first. The caller commits,
   * then hands the claims to `submitDirect`, or to `releaseDirect` if the transaction failed.
   */
  async claimDirect(q: Queryable, backendName: BackendName): Promise<DirectClaim | null> {
    const backend = this.backends.find((b) => b.name === backendName);
    if (!backend || this.closed || this.passing.has(backendName) || !this.deps.instance.healthy()) return null;
    const room = this.room(backend);
    if (room <= 0) return null;
    this.reserved.set(backendName, (this.reserved.get(backendName) ?? 0) + room);
    let claimed: Array<WithSealed<Workload>> = [];
    try {
      claimed = await claimForSubmit(q, backendName, room, this.deps.instance.id);
    } finally {
      this.unreserve(backendName, room - claimed.length);
    }
    return claimed.length > 0 ? { backend, claimed } : null;
  }

  /** The transaction of `claimDirect` committed: submit its claims as a pass does. */
  submitDirect(claim: DirectClaim): void {
    const done = this.submitAll(claim.backend, claim.claimed).finally(() => {
      this.unreserve(claim.backend.name, claim.claimed.length);
      this.direct.delete(done);
      this.wake(claim.backend.name); // room again, or more queued meanwhile
    });
    this.direct.add(done);
  }

  /** The transaction of `claimDirect` rolled back: its claims never happened. */
  releaseDirect(claim: DirectClaim): void {
    this.unreserve(claim.backend.name, claim.claimed.length);
  }

  /** Claims nothing more and waits for the submits under way to be recorded. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopping.abort();
    this.wake();
    await Promise.all([...this.loops, ...this.direct]);
  }

  /** What one claim may take now: the backend's free capacity less the room promised to direct claims. */
  private room(backend: Backend): number {
    const free = backend.freeCapacity?.() ?? this.options.batchSize;
    return Math.min(this.options.batchSize, free - (this.reserved.get(backend.name) ?? 0));
  }

  private unreserve(backend: BackendName, n: number): void {
    if (n > 0) this.reserved.set(backend, (this.reserved.get(backend) ?? 0) - n);
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
    if (this.closed || !this.deps.instance.healthy()) return 0;
    const room = this.room(backend);
    if (room <= 0) return 0;
    this.passing.add(backend.name);
    try {
      const claimed = await claimForSubmit(this.life.db, backend.name, room, this.deps.instance.id);
      if (claimed.length === 0) return 0;
      await this.submitAll(backend, claimed);
      return claimed.length;
    } finally {
      this.passing.delete(backend.name);
    }
  }

  /** Submits claimed workloads, `submitConcurrency` at a time, in claim order. */
  private async submitAll(backend: Backend, claimed: Array<WithSealed<Workload>>): Promise<void> {
    this.life.feed.poke();
    let next = 0;
    const lanes = Array.from({ length: Math.min(this.options.submitConcurrency, claimed.length) }, async () => {
      while (next < claimed.length) {
        const w = claimed[next++]!;
        await this.submitOne(backend, withoutSealed(w), w.sealedSecretEnv);
      }
    });
    await Promise.all(lanes);
  }

  private async submitOne(backend: Backend, w: Workload, sealed: Buffer | null): Promise<void> {
    if (this.closed || !this.deps.instance.healthy()) {
      // Not submitted: hand the claim back now rather than leave it for the leader to find.
      await releaseClaim(this.life.db, w.id, w.attempt, this.deps.instance.id).catch(() => undefined);
      return;
    }
    let ref: string | null;
    try {
      const secretEnv = this.deps.openSecrets(w.id, sealed);
      ({ ref } = await backend.submit(w, w.attempt, { secretEnv, signal: this.stopping.signal }));
    } catch (error) {
      if (error instanceof SubmitError) {
        this.life.logger.warn(
          { workload: w.id, attempt: w.attempt, backend: backend.name, err: error.message },
          'submit failed',
        );
        await this.life.failAttemptNow(w.id, w.attempt, error.reason, false, error.message);
        return;
      }
      this.life.logger.warn(
        { workload: w.id, attempt: w.attempt, backend: backend.name, err: (error as Error).message },
        'submit ended without an answer: asking the backend whether the job exists',
      );
      const found = await this.findOut(backend, w);
      if (found === undefined) return;
      ref = found;
    }
    this.life.metrics.observeDispatch(w.queue, (Date.now() - Date.parse(w.queuedAt)) / 1000);
    const marked = await this.record(w, ref);
    this.life.feed.poke();
    if (marked?.stopReason) this.deps.stopsDue(); // cancelled while the submit was in flight
  }

  /**
   * After a submit whose outcome is unknown: asks the backend until it can tell. Returns the job's ref when
   * it exists, or undefined when the attempt was settled here (released to the queue, or failed).
   */
  private async findOut(backend: Backend, w: Workload): Promise<string | null | undefined> {
    for (let delay = 500; ; delay = Math.min(delay * 2, 30_000)) {
      const [verdict] = await backend
        .reconcile([{ workloadId: w.id, attempt: w.attempt, ref: null, state: 'submitting', claimedAt: Date.now() }])
        .catch(() => [undefined]);
      if (verdict?.verdict === 'attached') return verdict.ref;
      if (verdict?.verdict === 'absent') {
        await releaseClaim(this.life.db, w.id, w.attempt, this.deps.instance.id);
        this.wake(backend.name);
        return undefined;
      }
      if (verdict?.verdict === 'lost') {
        await this.life.failAttemptNow(w.id, w.attempt, 'lost', verdict.started, verdict.message);
        return undefined;
      }
      // Unknown yet. If this instance is going away, its claim stays `submitting` for the leader to settle.
      if (this.closed) return undefined;
      await sleep(delay);
    }
  }

  /**
   * The job exists now: record it. Should the database be away, keep trying while this instance lives; if
   * it dies first, the row stays `submitting` under its id, and the job's name (which carries the workload
   * id and attempt) is exactly what the leader's reconcile looks for.
   */
  private async record(w: Workload, ref: string | null): Promise<Workload | null> {
    for (let delay = 200; ; delay = Math.min(delay * 2, 5_000)) {
      try {
        return await markSubmitted(this.life.db, w.id, w.attempt, ref);
      } catch (error) {
        if (this.closed) return null;
        this.life.logger.warn(
          { workload: w.id, attempt: w.attempt, err: (error as Error).message },
          'could not record a submitted job yet; retrying',
        );
        await sleep(delay);
      }
    }
  }
}
