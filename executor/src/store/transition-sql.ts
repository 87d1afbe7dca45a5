import { TRANSITIONS, type TransitionName } from '../domain/states.ts';

/**
 * SQL fragments derived from the state machine's table (domain/states.ts), so that the state a statement
 * writes and the states it may leave are those of a transition the table has, never spelt out by hand.
 */

/** `w.state IN ('queued', ...)`: the states transition `name` may leave. */
export function fromStates(name: TransitionName, column = 'state'): string {
  return `${column} IN (${TRANSITIONS[name].from.map((s) => `'${s}'`).join(', ')})`;
}

/** `'pending'`: the state transition `name` leads to, as an SQL literal. */
export function toState(name: TransitionName): string {
  return `'${TRANSITIONS[name].to}'`;
}
