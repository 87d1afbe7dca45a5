import { useRef, useState } from 'preact/hooks';
import { ApiError, get, seg } from '../api.ts';
import { Live } from '../components/Live.tsx';
import { Notice } from '../components/Notice.tsx';
import { StateBadge } from '../components/StateBadge.tsx';
import { isNewer, useFeed } from '../feed.ts';
import { ago, duration, time } from '../format.ts';
import { useLoader, useNow } from '../hooks.ts';
import { href, navigate } from '../router.ts';
import { BACKENDS, type FeedEvent, TERMINAL, WORKLOAD_STATES, type Worker, type Workload } from '../types.ts';

const PAGE = 100;
/** Up to this many changed workloads per feed batch are fetched one by one; more, and the page is listed again. */
const FETCH_ONE_BY_ONE = 20;

interface Filters {
  state: string;
  queue: string;
  backend: string;
  worker: string;
}

/**
 * Workloads, newest first, kept current by the change feed: the list is loaded once, then every state
 * change the feed reports updates its row (or adds a new workload that matches the filters) — no polling of
 * the list. A batch of changes larger than FETCH_ONE_BY_ONE reloads the first page in one request instead.
 */
export function Workloads({ query }: { query: URLSearchParams }) {
  const filters: Filters = {
    state: query.get('state') ?? '',
    queue: query.get('queue') ?? '',
    backend: query.get('backend') ?? '',
    worker: query.get('worker') ?? '',
  };
  const workers = useLoader((signal) => get<{ workers: Worker[] }>('/v1/workers', undefined, signal), []);
  const workerId = filters.worker
    ? (workers.data?.workers.find((w) => w.name === filters.worker)?.id ?? (workers.data ? 'unknown' : null))
    : '';
  const [rows, setRows] = useState<Workload[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [flash, setFlash] = useState<Set<string>>(new Set());
  const rowsRef = useRef<Workload[]>([]);
  rowsRef.current = rows ?? [];
  const now = useNow(1000);

  const listQuery = (before?: string) => ({
    state: filters.state,
    queue: filters.queue,
    backend: filters.backend,
    worker: workerId || undefined,
    limit: PAGE,
    before,
  });
  const matches = (w: Workload) =>
    (!filters.state || w.state === filters.state) &&
    (!filters.queue || w.queue === filters.queue) &&
    (!filters.backend || w.backend === filters.backend) &&
    (!workerId || w.workerId === workerId);

  const loadFirstPage = async (signal?: AbortSignal) => {
    const page = await get<{ workloads: Workload[]; next: string | null }>('/v1/workloads', listQuery(), signal);
    setRows(page.workloads);
    setNext(page.next);
    setError(null);
  };

  const apply = async (events: FeedEvent[]) => {
    const byId = new Map<string, FeedEvent>();
    for (const e of events) byId.set(e.workloadId, e); // the last event of each workload is where it is now
    const shown = new Map(rowsRef.current.map((w) => [w.id, w]));
    // The feed carries state, attempt and reason; the row's other fields (worker, times) come with a fetch.
    setRows((list) =>
      (list ?? []).map((w) => {
        const e = byId.get(w.id);
        return e && isNewer(e, w)
          ? { ...w, state: e.state, attempt: e.attempt, reason: e.reason, exitCode: e.exitCode }
          : w;
      }),
    );
    setFlash(new Set(byId.keys()));
    const wanted = [...byId.keys()];
    try {
      if (wanted.length > FETCH_ONE_BY_ONE) {
        await loadFirstPage();
        return;
      }
      const fetched = await Promise.all(
        wanted.map((id) =>
          get<Workload>(`/v1/workloads/${seg(id)}`).catch((e) => {
            if (e instanceof ApiError && e.status === 404) return null; // pruned by retention meanwhile
            throw e;
          }),
        ),
      );
      setRows((list) => {
        let out = [...(list ?? [])];
        for (const w of fetched) {
          if (!w) continue;
          const at = out.findIndex((x) => x.id === w.id);
          if (!matches(w)) {
            if (at >= 0) out.splice(at, 1);
            continue;
          }
          if (at >= 0) out[at] = isNewer(out[at]!, w) ? { ...w, ...pick(out[at]!) } : w;
          else if (!shown.has(w.id)) out.push(w);
        }
        out.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
        if (out.length > PAGE * 3) out = out.slice(0, PAGE * 3);
        return out;
      });
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  };

  const status = useFeed(
    {
      ready: async (signal) => {
        if (workerId === null) return; // the worker list is still loading: its name is not known yet
        try {
          await loadFirstPage(signal);
        } catch (e) {
          if ((e as Error).name === 'AbortError') throw e;
          setError(e instanceof ApiError ? e.message : String(e));
          throw e;
        }
      },
      events: (events) => void apply(events),
    },
    [filters.state, filters.queue, filters.backend, workerId],
  );

  const setFilter = (name: keyof Filters, value: string) =>
    navigate(href(['workloads'], { ...filters, [name]: value }), true);
  const older = async () => {
    if (!next) return;
    try {
      const page = await get<{ workloads: Workload[]; next: string | null }>('/v1/workloads', listQuery(next));
      setRows((list) => [...(list ?? []), ...page.workloads.filter((w) => !(list ?? []).some((x) => x.id === w.id))]);
      setNext(page.next);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  };
  const queues = [...new Set((rows ?? []).map((w) => w.queue).concat(filters.queue ? [filters.queue] : []))].sort();
  const filtered = Object.values(filters).some(Boolean);

  return (
    <section aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title">Workloads</h1>
        <Live status={status} />
      </div>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <label>
          State
          <select value={filters.state} onChange={(e) => setFilter('state', (e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {WORKLOAD_STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Queue
          <input
            list="queue-names"
            value={filters.queue}
            placeholder="any"
            onChange={(e) => setFilter('queue', (e.target as HTMLInputElement).value.trim())}
          />
          <datalist id="queue-names">
            {queues.map((q) => (
              <option key={q} value={q} />
            ))}
          </datalist>
        </label>
        <label>
          Backend
          <select value={filters.backend} onChange={(e) => setFilter('backend', (e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {BACKENDS.map((b) => (
              <option key={b} value={b}>
                {b}
              </option>
            ))}
          </select>
        </label>
        <label>
          Worker
          <select value={filters.worker} onChange={(e) => setFilter('worker', (e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {(workers.data?.workers ?? []).map((w) => (
              <option key={w.id} value={w.name}>
                {w.name}
              </option>
            ))}
            {filters.worker && !workers.data?.workers.some((w) => w.name === filters.worker) ? (
              <option value={filters.worker}>{filters.worker}</option>
            ) : null}
          </select>
        </label>
        {filtered ? (
          <button type="button" class="link-button" onClick={() => navigate(href(['workloads']), true)}>
            Clear filters
          </button>
        ) : null}
      </form>
      {error ? (
        <Notice kind="error" title="Could not load the workloads">
          {error} The page retries by itself.
        </Notice>
      ) : null}
      {workerId === 'unknown' ? (
        <Notice kind="empty" title={`No worker named ${filters.worker}`}>
          It may have been forgotten.{' '}
          <button type="button" class="link-button" onClick={() => setFilter('worker', '')}>
            Show every worker’s workloads
          </button>
        </Notice>
      ) : null}
      {rows && rows.length === 0 && workerId !== 'unknown' ? (
        <Notice kind="empty" title={filtered ? 'No workload matches these filters' : 'No workloads yet'}>
          {filtered
            ? 'New ones that match appear here as they are submitted.'
            : 'Workloads appear here the moment they are submitted, from Airflow or with `airfleet submit`.'}
        </Notice>
      ) : null}
      {!rows && !error ? <p class="loading">Loading workloads…</p> : null}
      {rows && rows.length > 0 ? (
        <div class="table-wrap">
          <table class="table cards">
            <caption class="visually-hidden">Workloads, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">State</th>
                <th scope="col">Queue</th>
                <th scope="col">Backend</th>
                <th scope="col">Worker</th>
                <th scope="col" class="num">
                  Attempt
                </th>
                <th scope="col">Submitted</th>
                <th scope="col" class="num">
                  Ran for
                </th>
                <th scope="col">Outcome</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((w) => (
                <tr
                  key={w.id}
                  data-workload={w.key}
                  aria-label={`workload ${w.key}`}
                  class={flash.has(w.id) ? 'flash' : undefined}
                >
                  <th scope="row" data-label="Key">
                    <a href={href(['workloads', w.id])} class="mono key">
                      {w.key}
                    </a>
                  </th>
                  <td data-label="State">
                    <StateBadge state={w.state} />
                  </td>
                  <td data-label="Queue">{w.queue}</td>
                  <td data-label="Backend">{w.backend}</td>
                  <td data-label="Worker">{w.workerName ?? '–'}</td>
                  <td data-label="Attempt" class="num">
                    {w.attempt}
                  </td>
                  <td data-label="Submitted">
                    <time dateTime={w.createdAt} title={time(w.createdAt)}>
                      {ago(w.createdAt, now)}
                    </time>
                  </td>
                  <td data-label="Ran for" class="num">
                    {w.startedAt
                      ? duration(((w.finishedAt ? Date.parse(w.finishedAt) : now) - Date.parse(w.startedAt)) / 1000)
                      : '–'}
                  </td>
                  <td data-label="Outcome">{outcome(w)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {next ? (
        <p>
          <button type="button" onClick={() => void older()}>
            Show older workloads
          </button>
        </p>
      ) : null}
    </section>
  );
}

/** What a row keeps from its feed-updated self when a fetch answered with an older view. */
function pick(w: Workload): Partial<Workload> {
  return { state: w.state, attempt: w.attempt, reason: w.reason, exitCode: w.exitCode };
}

export function outcome(w: Pick<Workload, 'state' | 'reason' | 'exitCode' | 'cancelRequested'>): string {
  if (w.state === 'succeeded') return w.exitCode !== null ? `exit ${w.exitCode}` : 'done';
  if (TERMINAL.includes(w.state)) {
    return [w.reason, w.exitCode !== null ? `exit ${w.exitCode}` : null].filter(Boolean).join(', ') || w.state;
  }
  return w.cancelRequested ? 'cancel requested' : '';
}
