import { label } from '../format.ts';

/** A state as a word with a colour: the word carries the meaning, the colour only helps scanning. */
export function StateBadge({ state, title }: { state: string; title?: string | undefined }) {
  return (
    <span class={`badge state-${state}`} title={title} data-state={state}>
      {label(state)}
    </span>
  );
}
