import { type FailureReason, isTerminal } from '../../domain/states.ts';
import type { Workload } from '../../domain/workload.ts';
import { ConflictError, NotFoundError } from '../../errors.ts';
import type { Waiter } from '../../lib/waiters.ts';
import type { Queryable } from '../../store/db.ts';
import { leasePass } from '../../store/lease-pass.ts';
import { appendLogChunk, type LogStream } from '../../store/logs.ts';
import { getWorkload, type WithSealed, withoutSealed } from '../../store/workloads.ts';
import type { BackendUpdate } from '../backend.ts';
import type { PoolHost } from './pool-host.ts';
import { goneError, type LeasedWorkload, type StopOrder, viewOf, type WorkerView } from './worker-registry.ts';

export interface PollResult {
  leases: LeasedWorkload[];
  /** Attempts this worker runs that it must stop (cancelled, pending timeout...), with the reason. */
  stop: StopOrder[];
  config: WorkerView;
}

/** A worker's report, as it arrives over HTTP (optional fields filled in with defaults here). */
export interface Report {
  workloadId: string;
  attempt: number;
  /** `released`: a lease the worker hands back without having started it (it is stopping). */
  state: 'running' | 'succeeded' | 'failed' | 'cancelled' | 'released';
  exitCode?: number | null | undefined;
  reason?: FailureReason | undefined;
  message?: string | undefined;
  /** Whether the task's own process started (false: it failed before, e.g. image pull). */
  started?: boolean | undefined;
}

/**
 * The lease protocol of the pull-worker pool: long-polls that lease queued work fitting a worker's free
 * slots (SKIP LOCKED, in the poll's own transaction), reports of how attempts went, and log uploads.
 */
export class LeaseProtocol {
  private readonly host: PoolHost;
  /** Per worker, its last lease pass on this instance that left nothing it could take (see `poll`). */
  private readonly exhaustedPasses = new Map<string, ExhaustedPass>();
  /**
   * Per worker whose last pass on this instance filled its slots with nothing held back: its queues' keys
   * and the wake-up generation that pass began at (see `slotsFreed`).
   */
  private readonly filledPasses = new Map<string, { mark: number; queueKeys: string[] }>();
  /** Per worker, its poll parked on this instance, and how many slots came free since it parked. */
  private readonly parkedPolls = new Map<string, { waiter: Waiter; freed: number }>();

  constructor(host: PoolHost) {
    this.host = host;
  }

  /** Drops what this instance remembers of a worker (it was written off or registered again). */
  forget(workerId: string): void {
    this.exhaustedPasses.delete(workerId);
    this.filledPasses.delete(workerId);
  }

  /**
   * A task of the worker ended. Its poll parked on freed slots is woken, to look for work, unless its last
   * pass filled its slots with nothing held back and no wake-up for its queues went unanswered since that
   * pass began: then nothing queued waits for this worker (new work wakes polls through its queues, and a
   * wake-up no parked poll could take is recorded, and seen here), and its pass would find nothing. That
   * poll goes on waiting, on its queues now, worth the slots that came free. At hundreds of tasks a second
   * the pass it was spared was one empty pass for every pass that filled a worker.
   */
  slotsFreed(workerId: string): void {
    const waiters = this.host.queueWaiters;
    const filled = this.filledPasses.get(workerId);
    const parked = this.parkedPolls.get(workerId);
    if (filled && parked && !waiters.signalledSince(filled.queueKeys, filled.mark, 0)) {
      parked.freed++;
      if (waiters.extend(parked.waiter, filled.queueKeys, parked.freed)) return;
    }
    waiters.wake(`s:${workerId}`);
  }

  /**
   * The worker's long-poll: returns as soon as there are leases for its free slots, stop orders, or a
   * change of its configuration; otherwise after `waitMs` with nothing. Each pass is one statement.
   */
  async poll(
    workerId: string,
    input: { freeSlots: number; waitMs: number; known?: Partial<WorkerView> | undefined },
    signal?: AbortSignal,
  ): Promise<PollResult> {
    const deadline = Date.now() + input.waitMs;
    const waiters = this.host.queueWaiters;
    const skipped = this.skipPass(workerId, input.known);
    if (skipped) {
      this.host.metrics.pollPasses.inc({ outcome: 'skipped' });
      const parked = await this.park(workerId, skipped.keys, deadline - Date.now(), skipped.free, signal);
      if (parked === 'timeout' || signal?.aborted || this.host.stopping()) return skipped.result;
    }
    for (;;) {
      const started = process.hrtime.bigint();
      const mark = waiters.mark();
      const { result, keys, exhausted, free, handOn, filled } = await this.pass(workerId, signal);
      if (filled) this.filledPasses.set(workerId, { mark, queueKeys: filled });
      else this.filledPasses.delete(workerId);
      // Work it saw and left queued (too big for its slots, or more than it could take) is another
      // poll's to take: wake one, as the submission would have.
      for (const [queue, count] of handOn) this.host.wakeQueue(queue, count);
      this.rememberPass(
        workerId,
        exhausted || free === 0 ? { mark, at: Date.now(), keys, config: result.config, free } : null,
      );
      this.host.metrics.pollPasses.inc({ outcome: result.leases.length > 0 ? 'leased' : 'empty' });
      if (result.leases.length > 0) {
        // The worker hung up while the pass ran: the reply has nowhere to go, so hand the leases straight
        // back rather than let them wait out the acknowledgement timeout.
        if (signal?.aborted) {
          await this.handBack(workerId, result.leases, 'the worker hung up before the lease reached it');
          return { ...result, leases: [] };
        }
        this.afterLease(result.leases, started);
        result.leases = this.withSecrets(result.leases as unknown as Array<WithSealed<Workload>>);
      }
      const configChanged = viewBehind(input.known, result.config);
      const left = deadline - Date.now();
      if (
        result.leases.length > 0 ||
        result.stop.length > 0 ||
        configChanged ||
        left <= 0 ||
        signal?.aborted ||
        this.host.stopping()
      ) {
        return result;
      }
      // Signalled while the pass ran (after its snapshot, before this park) and nobody parked took it: look
      // again rather than park past it.
      if (waiters.signalledSince(keys, mark, free)) continue;
      // Nothing woke it: nothing changed for this worker, so answer without another round trip (2,000
      // idle workers time out 100 times a second).
      if ((await this.park(workerId, keys, left, free, signal)) === 'timeout' || this.host.stopping()) return result;
    }
  }

  /**
   * One lease pass: one statement (store/lease-pass.ts), which also serializes it against the worker's
   * other polls (two polls of one worker never fill the same slots).
   */
  private async pass(workerId: string, signal: AbortSignal | undefined): Promise<PassOutcome> {
    // A stopping instance hands out nothing more: its peers, or its successor, will. A worker that hung up
    // (it is stopping) would get work it cannot take.
    const open = !this.host.stopping() && !signal?.aborted;
    let pass = await leasePass(this.host.db, workerId, open);
    // Another pass of this worker leased after this one's snapshot (a second poll of the same worker): the
    // next statement's snapshot has it.
    for (let tries = 1; pass && !pass.fresh && tries < MAX_STALE_PASSES; tries++) {
      pass = await leasePass(this.host.db, workerId, open);
    }
    if (!pass) throw new NotFoundError('worker', workerId);
    const { worker } = pass;
    if (worker.state === 'lost' || worker.state === 'offline') throw goneError(worker);
    const config = viewOf(worker);
    const stop = worker.hasStop ? await stopsFor(this.host.db, workerId) : [];
    // Slots are accounted here, not by the worker: a slot is free the moment the service records the end of
    // the task that held it, and that wakes this poll (see Lifecycle.afterChange), so the worker never hangs
    // up to re-poll (which could strand a lease granted while its reply had nowhere to go).
    const accepting = !worker.maintenance && !worker.draining && !this.host.stopping();
    const queueKeys = accepting ? worker.queues.map((name) => `q:${name}`) : [];
    const { free, leases } = pass;
    const used = leases.reduce((sum, w) => sum + w.poolSlots, 0);
    const left = free - used;
    // `wantsSlots`: queued work was left because of the worker's free slots (it filled them, it passed some
    // over, or some are bigger than what was free), so freed slots should wake it. A stale pass (tried too
    // often) knows nothing: as if slots held work back.
    // A pass that began with no free slot locked no candidate: only `more` says whether work waits for it.
    const heldBack =
      accepting && (!pass.fresh || pass.candidates > leases.length || pass.bigger || (free === 0 && pass.more));
    const wantsSlots = heldBack || (accepting && (free === 0 || used >= free));
    // As many candidates as it asked for came back, and queued work is there beyond them.
    const more = pass.fresh && free > 0 && pass.candidates >= free && pass.more;
    // Candidates it locked and left (concurrent passes skipped them), and, when it took as many as it could,
    // the work that may be queued behind: a wake-up each, for a poll with slots, as their submission was.
    const handOn = new Map(pass.left);
    if (more && handOn.size === 0 && leases.length > 0) handOn.set(leases.at(-1)!.queue, 1);
    // Parked on its queues only while it has slots to take new work with: a full worker woken by a
    // submission would make a pass that takes nothing. Woken by freed slots only when slots are what held
    // work back: otherwise every task end would cost a lease pass that finds nothing (new work wakes the
    // poll through its queue anyway).
    const keys = [`w:${workerId}`, ...(left > 0 ? queueKeys : []), ...(wantsSlots ? [`s:${workerId}`] : [])];
    return {
      result: { leases: leases as unknown as LeasedWorkload[], stop, config },
      keys,
      exhausted: pass.fresh && !wantsSlots && !more,
      free: left,
      handOn,
      // Full with nothing held back: freed slots matter only if work for its queues is waiting (slotsFreed).
      // Not one that saw work beyond what it took (queued before its mark, that work would wait out the
      // whole poll: no wake-up for it comes any more).
      filled: wantsSlots && !heldBack && !more ? queueKeys : null,
    };
  }

  /**
   * A worker polls again the moment a poll hands it leases. When its previous pass on this instance, just
   * now, found nothing more it could take or left it no free slot, and no wake-up for its queues or for
   * itself went unanswered since that pass began, another pass would find nothing either: park at once and
   * skip it. A wake-up that parked polls did
   * answer is theirs to serve. Bounded to a second, so what no signal announces (a worker written off
   * on another instance) is still seen soon.
   */
  private skipPass(
    workerId: string,
    known: Partial<WorkerView> | undefined,
  ): { keys: string[]; free: number; result: PollResult } | null {
    const last = this.exhaustedPasses.get(workerId);
    if (!last) return null;
    this.exhaustedPasses.delete(workerId);
    if (Date.now() - last.at > SKIP_PASS_WITHIN_MS) return null;
    // The worker's view of its configuration is behind: the pass would answer at once, so make it.
    if (viewBehind(known, last.config)) return null;
    // Its keys as that pass left them: freed slots are among them only when slots held work back (a pass
    // that found nothing it could take is not helped by them, and the end of the task it just leased would
    // cost a pass that finds nothing).
    const keys = last.keys;
    if (this.host.queueWaiters.signalledSince(keys, last.mark, last.free)) return null;
    return { keys, free: last.free, result: { leases: [], stop: [], config: last.config } };
  }

  /** Parks the poll on `keys` for up to `ms`, worth `free` slots to a queue's wake-up; the worker hanging up wakes it. */
  private park(
    workerId: string,
    keys: readonly string[],
    ms: number,
    free: number,
    signal: AbortSignal | undefined,
  ): Promise<'woken' | 'timeout'> {
    const waiter = this.host.queueWaiters.park(keys, Math.max(0, ms), free);
    signal?.addEventListener('abort', () => waiter.notify(), { once: true });
    const entry = { waiter, freed: 0 };
    this.parkedPolls.set(workerId, entry);
    return waiter.promise.finally(() => {
      if (this.parkedPolls.get(workerId) === entry) this.parkedPolls.delete(workerId);
    });
  }

  private rememberPass(workerId: string, pass: ExhaustedPass | null): void {
    if (!pass) {
      this.exhaustedPasses.delete(workerId);
      return;
    }
    if (this.exhaustedPasses.size >= MAX_REMEMBERED_PASSES) this.exhaustedPasses.clear();
    this.exhaustedPasses.set(workerId, pass);
  }

  private afterLease(leased: Workload[], started: bigint): void {
    this.host.metrics.leaseLatency.observe(Number(process.hrtime.bigint() - started) / 1e9);
    const now = Date.now();
    for (const w of leased) this.host.metrics.observeDispatch(w.queue, (now - Date.parse(w.queuedAt)) / 1000);
    this.host.pokeFeed();
  }

  private withSecrets(leases: Array<WithSealed<Workload>>): LeasedWorkload[] {
    return leases.map((w) => ({ ...withoutSealed(w), secretEnv: this.host.openSecrets(w.id, w.sealedSecretEnv) }));
  }

  /** Leases that never reached the worker, or that it returns unstarted: new attempts, no retry spent. */
  private async handBack(workerId: string, leases: readonly Workload[], why: string): Promise<void> {
    for (const w of leases) {
      await this.host.life.failAttemptNow(w.id, w.attempt, 'lost', false, why, {
        owner: workerId,
        countsAsRetry: false,
      });
    }
  }

  /**
   * A worker reports progress or the end of an attempt. Reports are fenced and idempotent. The change itself
   * is fenced (by attempt and worker, in its own statement), so the row is read only when nothing changed: to
   * tell a retried report (answered with the workload as it is) from a stale one (409). On the hot path, a
   * report is one statement.
   */
  async report(workerId: string, report: Report): Promise<Workload> {
    const result =
      report.state === 'released'
        ? await this.host.life.failAttemptNow(
            report.workloadId,
            report.attempt,
            'lost',
            false,
            report.message ?? 'handed back unstarted by a stopping worker',
            { owner: workerId, countsAsRetry: false },
          )
        : await this.host.life.apply(updateOf(report), workerId);
    return result ?? this.unchanged(workerId, report);
  }

  private async unchanged(workerId: string, report: Report): Promise<Workload> {
    const current = await getWorkload(this.host.db, report.workloadId);
    if (!current) throw new NotFoundError('workload', report.workloadId);
    if (current.attempt !== report.attempt || current.workerId !== workerId) {
      throw new ConflictError(
        `report for attempt ${report.attempt} of ${report.workloadId} is stale: the workload is on attempt ${current.attempt}${
          current.workerId === workerId ? '' : ' of another worker'
        }; drop it`,
        { attempt: current.attempt },
      );
    }
    // A retried report whose first answer was lost, or an end the service had already recorded otherwise.
    if (current.state === report.state || isTerminal(current.state)) return current;
    throw new ConflictError(`cannot move workload ${report.workloadId} from ${current.state} to ${report.state}`, {
      state: current.state,
    });
  }

  /**
   * Stores a log chunk of an attempt this worker holds, and answers how many bytes of the stream the
   * service now has: the shipper resumes from there.
   */
  async appendLog(
    workerId: string,
    chunk: { workloadId: string; attempt: number; stream: LogStream; offset: number; data: Buffer },
  ): Promise<number> {
    const length = await appendLogChunk(this.host.db, chunk, { workerId });
    this.host.logWritten(chunk.workloadId);
    return length;
  }
}

/** Stop orders for what a worker holds. */
async function stopsFor(q: Queryable, workerId: string): Promise<StopOrder[]> {
  const { rows } = await q.query<{ id: string; attempt: number; stop_reason: string; stop_message: string | null }>(
    `SELECT id, attempt, stop_reason, stop_message FROM workloads
     WHERE worker_id = $1::uuid AND stop_reason IS NOT NULL AND state IN ('pending', 'running')`,
    [workerId],
  );
  return rows.map((r) => ({ workloadId: r.id, attempt: r.attempt, reason: r.stop_reason, message: r.stop_message }));
}

/** Passes in a row that may find another pass of the same worker leased meanwhile (see leasePass). */
const MAX_STALE_PASSES = 5;
/** How recent a pass must be for the next poll to skip its own (see LeaseProtocol.skipPass). */
const SKIP_PASS_WITHIN_MS = 1_000;
/** Where the record of passes is wiped rather than grown (wiping only costs passes). */
const MAX_REMEMBERED_PASSES = 100_000;

interface PassOutcome {
  result: PollResult;
  /** What should wake the poll if it parks. */
  keys: string[];
  /** Nothing more it could take was queued (see LeaseProtocol.skipPass). */
  exhausted: boolean;
  /** The worker's free slots after the pass. */
  free: number;
  /** Queued work the pass saw and left, by queue: someone else's to take. */
  handOn: Map<string, number>;
  /** Its slots are full and nothing was held back: its queues' keys (see LeaseProtocol.slotsFreed). */
  filled: string[] | null;
}

interface ExhaustedPass {
  /** The wake-up generation when the pass began. */
  mark: number;
  at: number;
  keys: string[];
  config: WorkerView;
  /** The worker's free slots after the pass. */
  free: number;
}

/** Whether the configuration the worker says it knows differs from its current one (a poll answers at once). */
function viewBehind(known: Partial<WorkerView> | undefined, config: WorkerView): boolean {
  return (
    known !== undefined &&
    (known.maintenance !== config.maintenance ||
      known.concurrency !== config.concurrency ||
      (known.queues ?? []).join(',') !== config.queues.join(','))
  );
}

/** A worker's report in the shape every backend's watcher uses. */
function updateOf(report: Report): BackendUpdate {
  const base = { workloadId: report.workloadId, attempt: report.attempt };
  switch (report.state) {
    case 'running':
      return { ...base, state: 'running' };
    case 'succeeded':
      return { ...base, state: 'succeeded', exitCode: report.exitCode ?? 0 };
    case 'cancelled':
      return {
        ...base,
        state: 'cancelled',
        exitCode: report.exitCode ?? null,
        ...(report.message ? { message: report.message } : {}),
      };
    case 'failed':
    case 'released':
      return {
        ...base,
        state: 'failed',
        reason: report.reason ?? 'task_error',
        started: report.state === 'failed' ? (report.started ?? true) : false,
        exitCode: report.exitCode ?? null,
        ...(report.message ? { message: report.message } : {}),
      };
  }
}
