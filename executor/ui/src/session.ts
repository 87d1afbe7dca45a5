import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Session } from './types.ts';

/** What the signed-in token may do; the page shows only the actions it allows (the API enforces them too). */
export interface Abilities {
  session: Session;
  /** Maintenance, drain, forget, queues and concurrency of workers. */
  admin: boolean;
  /** Cancel workloads. */
  submit: boolean;
}

export function abilitiesOf(session: Session): Abilities {
  const admin = session.scopes.includes('admin');
  return { session, admin, submit: admin || session.scopes.includes('submit') };
}

export const SessionContext = createContext<Abilities | null>(null);

export function useAbilities(): Abilities {
  const value = useContext(SessionContext);
  if (!value) throw new Error('useAbilities outside a signed-in page');
  return value;
}
