/** A value out of a maximum as a bar and as text; the bar is decoration, the text is what is read out. */
export function Meter(props: { value: number | undefined; max: number | undefined; text: string; label: string }) {
  const known = props.value !== undefined && props.max !== undefined && props.max > 0;
  const ratio = known ? Math.min(1, Math.max(0, props.value! / props.max!)) : 0;
  const level = ratio >= 0.9 ? 'high' : ratio >= 0.7 ? 'mid' : 'low';
  return (
    <div class="meter" title={props.label}>
      <span class="meter-text">{props.text}</span>
      {known ? (
        <span class={`meter-bar meter-${level}`} aria-hidden="true">
          <span style={{ width: `${Math.round(ratio * 100)}%` }} />
        </span>
      ) : null}
    </div>
  );
}
