import type { Workload } from '../domain/workload.ts';
import type { Principal } from '../service/executor-service.ts';

/** What a non-admin sees in place of an env value (secrets belong in secretEnv, which nobody sees). */
export const HIDDEN_VALUE = '<hidden: admin only>';

/** What a caller with only the `submit` scope learns of a workload: enough to follow it, nothing it holds. */
export interface WorkloadSummary {
  id: string;
  key: string;
  state: Workload['state'];
  attempt: number;
  createdAt: string;
}

function can(principal: Principal | null, scope: 'admin' | 'read'): boolean {
  return principal?.kind === 'api' && (principal.scopes.includes('admin') || principal.scopes.includes(scope));
}

/**
 * A workload as this caller may see it: admin tokens see everything but secretEnv (which no read returns);
 * read tokens see env names but not their values; a submit-only token sees id, key and state, so that
 * resubmitting someone else's key reveals nothing of that workload.
 */
export function presentWorkload(w: Workload, principal: Principal | null): Workload | WorkloadSummary {
  if (can(principal, 'admin')) return w;
  if (can(principal, 'read')) {
    return { ...w, env: Object.fromEntries(Object.keys(w.env).map((name) => [name, HIDDEN_VALUE])) };
  }
  return { id: w.id, key: w.key, state: w.state, attempt: w.attempt, createdAt: w.createdAt };
}
