import type { Backend, InFlightAttempt, ReconcileVerdict } from '../backends/backend.ts';
import { isTerminal } from '../domain/states.ts';
import { adoptAttempt, type InFlightRow, inFlightOrphans, lockAttempt, releaseClaim } from '../store/workloads.ts';
import type { Lifecycle } from './lifecycle.ts';

export interface ReconcileCounts {
  attached: number;
  absent: number;
  lost: number;
  pending: number;
}

/**
 * Finds again what nobody watches: push attempts owned by instances that died (or left), asked of their
 * backend, then adopted by this instance, released back to the queue, or failed as lost. Run by the leader
 * at start-up and periodically (docs/architecture.md, "Several instances").
 *
 * Every write is a compare-and-set on the dead owner: two leaders overlapping for a moment (one losing its
 * lock as the other takes it) cannot both adopt or release the same attempt.
 */
export class Reconciler {
  private readonly life: Lifecycle;
  private readonly instanceId: string;
  private readonly timeoutSeconds: number;

  constructor(life: Lifecycle, instanceId: string, instanceTimeoutMs: number) {
    this.life = life;
    this.instanceId = instanceId;
    this.timeoutSeconds = instanceTimeoutMs / 1000;
  }

  async orphansOf(backend: Backend, limit = 500): Promise<ReconcileCounts> {
    const counts: ReconcileCounts = { attached: 0, absent: 0, lost: 0, pending: 0 };
    if (backend.mode !== 'push') return counts;
    const rows = await inFlightOrphans(this.life.db, backend.name, this.timeoutSeconds, limit, this.instanceId);
    if (rows.length === 0) return counts;
    const byKey = new Map(rows.map((r) => [`${r.workloadId}#${r.attempt}`, r]));
    const asked: InFlightAttempt[] = rows.map((r) => ({
      workloadId: r.workloadId,
      attempt: r.attempt,
      state: r.state,
      ref: r.ref,
      claimedAt: r.claimedAt,
    }));
    const verdicts = await backend.reconcile(asked);
    let changed = false;
    for (const v of verdicts) {
      const row = byKey.get(`${v.workloadId}#${v.attempt}`);
      if (!row) continue;
      counts[v.verdict]++;
      changed = (await this.apply(row, v)) || changed;
    }
    if (changed) this.life.afterBulkChange();
    this.life.logger.info({ backend: backend.name, ...counts }, 'reconciled attempts of instances that are gone');
    return counts;
  }

  private async apply(row: InFlightRow, v: ReconcileVerdict): Promise<boolean> {
    const db = this.life.db;
    switch (v.verdict) {
      case 'attached':
        return (await adoptAttempt(db, row.workloadId, row.attempt, row.claimedBy, this.instanceId, v.ref)) !== null;
      case 'absent':
        if (row.state === 'submitting') {
          return (await releaseClaim(db, row.workloadId, row.attempt, row.claimedBy)) !== null;
        }
        // A job that was recorded as made cannot be "never made": treat it as gone.
        return this.lose(row, false, 'its job is no longer known to the backend');
      case 'lost':
        return this.lose(row, v.started, v.message);
      case 'pending':
        return false;
    }
  }

  private async lose(row: InFlightRow, started: boolean, message: string): Promise<boolean> {
    const result = await this.life.db.tx(async (q) => {
      const locked = await lockAttempt(q, row.workloadId, row.attempt);
      if (!locked || isTerminal(locked.state) || locked.claimedBy !== row.claimedBy) return null;
      return this.life.failAttempt(q, locked, 'lost', started || locked.state === 'running', message);
    });
    if (result) this.life.afterChange(result);
    return result !== null;
  }
}
