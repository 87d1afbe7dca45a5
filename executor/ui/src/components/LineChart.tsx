import { useEffect, useRef, useState } from 'preact/hooks';
import { clock } from '../format.ts';

export interface Series {
  name: string;
  /** CSS class giving the line its colour (chart-1 … chart-5, defined per theme). */
  tone: string;
  /** [time in ms, value]; null breaks the line (no data for that interval). */
  points: Array<[number, number | null]>;
  dashed?: boolean;
}

/** A small time-series chart in SVG, sized to its container in real pixels so its text stays readable. */
export function LineChart(props: {
  title: string;
  series: Series[];
  format: (v: number) => string;
  /** The time axis; default the span of the points. */
  from?: number;
  to?: number;
  height?: number;
  step?: boolean;
  /** Whole numbers only (counts of workers): the axis's middle line stays on a whole number. */
  integer?: boolean;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(560);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const observer = new ResizeObserver(([entry]) => {
      if (entry) setWidth(Math.max(240, Math.floor(entry.contentRect.width)));
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  const height = props.height ?? 170;
  const pad = { left: 58, right: 12, top: 10, bottom: 24 };
  const all = props.series.flatMap((s) => s.points);
  const times = all.map((p) => p[0]);
  const from = props.from ?? Math.min(...times);
  const to = props.to ?? Math.max(...times);
  const values = all.map((p) => p[1]).filter((v): v is number => v !== null && Number.isFinite(v));
  const peak = values.length ? Math.max(...values) : 0;
  // A count axis of 0…5 labelled its middle "3" (2.5 rounded) and 0…1 labelled it "1": keep the top even,
  // and for a few workers the peak itself (0, 2, 4 for 4).
  const top = props.integer ? Math.max(2, Math.ceil((peak <= 10 ? peak : niceMax(peak)) / 2) * 2) : niceMax(peak);
  const span = Math.max(1, to - from);
  const x = (t: number) => pad.left + ((t - from) / span) * (width - pad.left - pad.right);
  const y = (v: number) => pad.top + (1 - v / top) * (height - pad.top - pad.bottom);

  const paths = props.series.map((s) => {
    let d = '';
    let open = false;
    let last: [number, number] | null = null;
    for (const [t, v] of s.points) {
      if (v === null || !Number.isFinite(v)) {
        open = false;
        continue;
      }
      const px = x(t);
      const py = y(v);
      if (!open) d += `M${px.toFixed(1)},${py.toFixed(1)}`;
      else if (props.step && last) d += `H${px.toFixed(1)}V${py.toFixed(1)}`;
      else d += `L${px.toFixed(1)},${py.toFixed(1)}`;
      open = true;
      last = [px, py];
    }
    return d;
  });

  const latest = props.series.map((s) => [...s.points].reverse().find((p) => p[1] !== null)?.[1] ?? null);
  const summary = props.series
    .map((s, i) => `${s.name}: ${latest[i] === null ? 'no data' : props.format(latest[i]!)}`)
    .join('; ');
  const xTicks = width < 420 ? 3 : 5;
  const withSeconds = span < 10 * 60_000;
  // Points with no neighbour on either side draw no line: mark every point while there are few of them.
  const dots = props.series.map((s) =>
    s.points
      .map(([t, v], i) => ({ t, v, alone: s.points.length <= 40 || (s.points[i - 1]?.[1] ?? null) === null }))
      .filter((p): p is { t: number; v: number; alone: boolean } => p.v !== null && Number.isFinite(p.v) && p.alone),
  );

  return (
    <figure class="chart">
      <figcaption>{props.title}</figcaption>
      <div ref={box} class="chart-box">
        <svg width={width} height={height} role="img" aria-label={`${props.title}. Latest: ${summary}`}>
          {[0, 0.5, 1].map((f) => (
            <g key={f}>
              <line class="chart-rule" x1={pad.left} x2={width - pad.right} y1={y(top * f)} y2={y(top * f)} />
              <text class="chart-label" x={pad.left - 6} y={y(top * f) + 4} text-anchor="end">
                {props.format(top * f)}
              </text>
            </g>
          ))}
          {Array.from({ length: xTicks }, (_, i) => from + (span * i) / (xTicks - 1)).map((t, i) => (
            <text
              key={t}
              class="chart-label"
              x={x(t)}
              y={height - 6}
              text-anchor={i === 0 ? 'start' : i === xTicks - 1 ? 'end' : 'middle'}
            >
              {clock(t, withSeconds)}
            </text>
          ))}
          {props.series.map((s, i) => (
            <g key={s.name}>
              <path class={`chart-line ${s.tone}${s.dashed ? ' chart-dashed' : ''}`} d={paths[i]} fill="none" />
              {dots[i]!.map((p) => (
                <circle key={p.t} class={`chart-dot ${s.tone}`} cx={x(p.t)} cy={y(p.v)} r={2.5} />
              ))}
            </g>
          ))}
        </svg>
      </div>
      <ul class="chart-legend">
        {props.series.map((s, i) => (
          <li key={s.name}>
            <span class={`swatch ${s.tone}${s.dashed ? ' chart-dashed' : ''}`} aria-hidden="true" />
            {s.name}: <strong>{latest[i] === null ? '–' : props.format(latest[i]!)}</strong>
          </li>
        ))}
      </ul>
    </figure>
  );
}

/** A round upper bound for the value axis: 1, 2 or 5 times a power of ten. */
export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * power) return m * power;
  return 10 * power;
}
