import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, get } from '../api.ts';
import { LineChart } from '../components/LineChart.tsx';
import { Live } from '../components/Live.tsx';
import { Notice } from '../components/Notice.tsx';
import { useFeed } from '../feed.ts';
import { duration, number } from '../format.ts';
import { useLoader, useNow } from '../hooks.ts';
import { href } from '../router.ts';
import type { QueueRow } from '../types.ts';

/**
 * Depth per queue and backend (queued, pending, running and their slots), how long the oldest queued
 * workload has waited, and the workers serving each queue. It reloads when the change feed reports state
 * changes (at most once a second), not on a timer; the oldest wait counts on between loads.
 */
export function Queues() {
  const [rows, setRows] = useState<{ queues: QueueRow[]; at: number } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const now = useNow(1000);
  const pending = useRef<number | null>(null);

  const load = async (signal?: AbortSignal) => {
    try {
      const { queues } = await get<{ queues: QueueRow[] }>('/v1/queues', undefined, signal);
      setRows({ queues, at: Date.now() });
      setError(null);
    } catch (e) {
      if ((e as Error).name !== 'AbortError') setError(e instanceof ApiError ? e.message : String(e));
    }
  };
  const status = useFeed(
    {
      ready: (signal) => load(signal),
      events: () => {
        if (pending.current !== null) return;
        pending.current = window.setTimeout(() => {
          pending.current = null;
          void load();
        }, 1000);
      },
    },
    [],
  );
  useEffect(() => () => window.clearTimeout(pending.current ?? undefined), []);

  const queues = rows?.queues ?? [];
  const elapsed = rows ? (now - rows.at) / 1000 : 0;
  return (
    <section aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title">Queues &amp; pools</h1>
        <Live status={status} />
      </div>
      {error ? (
        <Notice kind="error" title="Could not load the queues">
          {error} It reloads with the next change.
        </Notice>
      ) : null}
      {rows && queues.length === 0 ? (
        <Notice kind="empty" title="Every queue is empty">
          Nothing is queued or running. Submit work from Airflow, or try{' '}
          <code>airfleet submit --queue default -- echo hello</code>.
        </Notice>
      ) : null}
      {!rows && !error ? <p class="loading">Loading queues…</p> : null}
      {queues.length > 0 ? (
        <div class="table-wrap">
          <table class="table cards">
            <caption class="visually-hidden">Queues by backend</caption>
            <thead>
              <tr>
                <th scope="col">Queue</th>
                <th scope="col">Backend</th>
                <th scope="col" class="num">
                  Queued
                </th>
                <th scope="col" class="num">
                  Pending
                </th>
                <th scope="col" class="num">
                  Running
                </th>
                <th scope="col" class="num">
                  Slots queued / running
                </th>
                <th scope="col" class="num">
                  Oldest waiting
                </th>
                <th scope="col" class="num">
                  Workers
                </th>
              </tr>
            </thead>
            <tbody>
              {queues.map((q) => (
                <tr key={`${q.queue}/${q.backend}`} aria-label={`queue ${q.queue} on ${q.backend}`}>
                  <th scope="row" data-label="Queue">
                    <a href={href(['workloads'], { queue: q.queue, backend: q.backend })}>{q.queue}</a>
                  </th>
                  <td data-label="Backend">{q.backend}</td>
                  <td data-label="Queued" class="num">
                    {number(q.queued)}
                  </td>
                  <td data-label="Pending" class="num">
                    {number(q.pending)}
                  </td>
                  <td data-label="Running" class="num">
                    {number(q.running)}
                  </td>
                  <td data-label="Slots queued / running" class="num">
                    {number(q.queuedSlots)} / {number(q.runningSlots)}
                  </td>
                  <td data-label="Oldest waiting" class="num">
                    {q.queued > 0 ? duration(q.oldestQueuedSeconds + elapsed) : '–'}
                  </td>
                  <td
                    data-label="Workers"
                    class={`num${q.backend === 'pool' && q.queued > 0 && q.workers === 0 ? ' late' : ''}`}
                  >
                    {q.backend === 'pool' ? (
                      <a href={href(['workers'], { queue: q.queue })}>{number(q.workers)}</a>
                    ) : (
                      '–'
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pools />
    </section>
  );
}

interface PoolPoint {
  at: number;
  desired: number | null;
  actual: number | null;
}

interface PoolView {
  name: string;
  queues: string[];
  driver: string | null;
  min: number | null;
  max: number | null;
  desired: number | null;
  actual: number | null;
  backlog: number | null;
  history: PoolPoint[];
}

/**
 * Autoscaled pools (GET /v1/pools, from the autoscaler): desired against actual workers over the last hour.
 * A service without pools (an empty list; older services answer 404) shows "not configured". The shape is read leniently, and
 * when a pool carries no history the page charts what it saw since it was opened.
 */
function Pools() {
  const seen = useRef(new Map<string, PoolPoint[]>());
  const pools = useLoader(
    async (signal) => {
      try {
        return readPools(await get<unknown>('/v1/pools', undefined, signal), seen.current);
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) return null;
        throw error;
      }
    },
    [],
    15_000,
  );
  const hourAgo = Date.now() - 3_600_000;
  return (
    <section aria-labelledby="pools-title" class="subsection">
      <h2 id="pools-title">Autoscaled pools</h2>
      {pools.error ? (
        <Notice kind="error" title="Could not load the pools">
          {pools.error.message}
        </Notice>
      ) : null}
      {pools.at > 0 && (pools.data === null || pools.data.length === 0) ? (
        <Notice kind="empty" title="Autoscaled pools are not configured on this service">
          Workers here are started by hand or by your own tooling. With an autoscaler, each pool’s desired and actual
          workers over the last hour show here.
        </Notice>
      ) : null}
      <div class="pool-grid">
        {(pools.data ?? []).map((p) => (
          <article class="card" key={p.name} aria-label={`pool ${p.name}`}>
            <h3>{p.name}</h3>
            <p class="sub">
              {p.queues.length ? `queues ${p.queues.join(', ')}` : ''}
              {p.driver ? ` · ${p.driver}` : ''}
              {p.min !== null || p.max !== null ? ` · ${p.min ?? 0}–${p.max ?? '∞'} workers` : ''}
            </p>
            <p class="figures">
              <span>
                desired <strong>{p.desired ?? '–'}</strong>
              </span>
              <span>
                actual <strong>{p.actual ?? '–'}</strong>
              </span>
              {p.backlog !== null ? (
                <span>
                  backlog <strong>{p.backlog}</strong> slots
                </span>
              ) : null}
            </p>
            {p.history.length > 1 ? (
              <LineChart
                title="Workers, desired and actual"
                step
                integer
                height={130}
                from={Math.max(hourAgo, p.history[0]!.at)}
                to={Date.now()}
                format={(v) => number(v)}
                series={[
                  { name: 'desired', tone: 'chart-1', points: p.history.map((h) => [h.at, h.desired]), dashed: true },
                  { name: 'actual', tone: 'chart-2', points: p.history.map((h) => [h.at, h.actual]) },
                ]}
              />
            ) : (
              <p class="help">The chart fills in as the autoscaler reports.</p>
            )}
          </article>
        ))}
      </div>
    </section>
  );
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function readPools(body: unknown, seen: Map<string, PoolPoint[]>): PoolView[] {
  const list = Array.isArray(body) ? body : ((body as { pools?: unknown[] })?.pools ?? []);
  const now = Date.now();
  return list.map((raw, i) => {
    const p = raw as Record<string, unknown>;
    const name = String(p.name ?? p.pool ?? p.id ?? `pool ${i + 1}`);
    const queues = Array.isArray(p.queues) ? p.queues.map(String) : p.queue ? [String(p.queue)] : [];
    const desired = num(p.desired ?? p.desiredWorkers);
    const actual = num(p.actual ?? p.actualWorkers ?? p.workers);
    const rawHistory = (p.history ?? p.series ?? p.samples) as unknown;
    let history: PoolPoint[];
    if (Array.isArray(rawHistory)) {
      history = rawHistory
        .map((h) => {
          const r = h as Record<string, unknown>;
          const at = Date.parse(String(r.at ?? r.time ?? r.t ?? ''));
          return { at, desired: num(r.desired), actual: num(r.actual) };
        })
        .filter((h) => Number.isFinite(h.at));
    } else {
      history = [...(seen.get(name) ?? []), { at: now, desired, actual }].filter((h) => h.at > now - 3_600_000);
      seen.set(name, history);
    }
    return {
      name,
      queues,
      driver: typeof p.driver === 'string' ? p.driver : null,
      min: num(p.min ?? p.minWorkers),
      max: num(p.max ?? p.maxWorkers),
      desired,
      actual,
      backlog: num(p.backlog ?? p.backlogSlots),
      history,
    };
  });
}
