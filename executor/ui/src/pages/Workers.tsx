import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError, del, get, patch, post, seg } from '../api.ts';
import { announce } from '../components/Announcer.tsx';
import { Dialog } from '../components/Dialog.tsx';
import { Meter } from '../components/Meter.tsx';
import { Notice } from '../components/Notice.tsx';
import { StateBadge } from '../components/StateBadge.tsx';
import { ago, bytes, label, number, percent, plural, time } from '../format.ts';
import { useLoader, useNow } from '../hooks.ts';
import { href, navigate } from '../router.ts';
import { useAbilities } from '../session.ts';
import { WORKER_STATES, type Worker } from '../types.ts';

const GONE = new Set(['offline', 'lost']);

/**
 * Pull workers: state, queues, slots, the metrics of their last heartbeat, maintenance comments; search and
 * filters (kept in the address, so a filtered view can be shared); for admin tokens, maintenance on/off,
 * queues and concurrency, drain, and forgetting a worker that is gone. Heartbeats have no change feed, so
 * the list reloads every few seconds while the page is visible.
 */
export function Workers({ query }: { query: URLSearchParams }) {
  const can = useAbilities();
  const workers = useLoader((signal) => get<{ workers: Worker[] }>('/v1/workers', undefined, signal), [], 3_000);
  const now = useNow(1000);
  const [dialog, setDialog] = useState<{ kind: 'maintenance' | 'edit' | 'drain' | 'forget'; worker: Worker } | null>(
    null,
  );
  const search = query.get('q') ?? '';
  const state = query.get('state') ?? '';
  const queue = query.get('queue') ?? '';
  const setFilter = (name: string, value: string) => {
    const next = { q: search, state, queue, [name]: value };
    navigate(href(['workers'], next), true);
  };

  const all = workers.data?.workers ?? [];
  const queues = [...new Set(all.flatMap((w) => w.queues))].sort();
  const needle = search.trim().toLowerCase();
  const shown = all.filter(
    (w) =>
      (!state || w.state === state) &&
      (!queue || w.queues.includes(queue)) &&
      (!needle ||
        [w.name, ...w.queues, w.maintenanceComment ?? '', w.runtime ?? '', ...Object.entries(w.labels).flat()]
          .join(' ')
          .toLowerCase()
          .includes(needle)),
  );
  const live = all.filter((w) => !GONE.has(w.state));
  const used = live.reduce((n, w) => n + w.usedSlots, 0);
  const total = live.reduce((n, w) => n + w.concurrency, 0);

  const done = async (what: string, action: () => Promise<unknown>) => {
    try {
      await action();
      announce(what);
      setDialog(null);
      await workers.reload();
    } catch (error) {
      announce(error instanceof ApiError ? error.message : String(error), 'error');
    }
  };

  return (
    <section aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title">Workers</h1>
        <p class="summary">
          {plural(live.length, 'live worker')}, {number(used)} of {number(total)} slots in use
          {all.length > live.length ? `, ${plural(all.length - live.length, 'gone')}` : ''}
        </p>
      </div>
      <form class="filters" aria-label="Filter workers" onSubmit={(e) => e.preventDefault()}>
        <label>
          Search
          <input
            type="search"
            value={search}
            placeholder="name, queue, label, comment"
            onInput={(e) => setFilter('q', (e.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          State
          <select value={state} onChange={(e) => setFilter('state', (e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {WORKER_STATES.map((s) => (
              <option key={s} value={s}>
                {label(s)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Queue
          <select value={queue} onChange={(e) => setFilter('queue', (e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {queues.map((q) => (
              <option key={q} value={q}>
                {q}
              </option>
            ))}
          </select>
        </label>
      </form>

      {workers.error ? (
        <Notice kind="error" title="Could not load the workers">
          {workers.error.message} The list retries every few seconds.
        </Notice>
      ) : null}
      {workers.data && all.length === 0 ? (
        <Notice kind="empty" title="No worker has registered yet">
          Start one where tasks should run:{' '}
          <code>airfleet worker --api-url {location.origin} --token &lt;enroll token&gt; --queues default</code>. It
          appears here within a heartbeat.
        </Notice>
      ) : null}
      {all.length > 0 && shown.length === 0 ? (
        <Notice kind="empty" title="No worker matches these filters">
          <button type="button" class="link-button" onClick={() => navigate(href(['workers']), true)}>
            Clear the filters
          </button>
        </Notice>
      ) : null}
      {!workers.data && !workers.error ? <p class="loading">Loading workers…</p> : null}

      {shown.length > 0 ? (
        <div class="table-wrap">
          <table class="table cards">
            <caption class="visually-hidden">Pull workers</caption>
            <thead>
              <tr>
                <th scope="col">Worker</th>
                <th scope="col">State</th>
                <th scope="col">Queues</th>
                <th scope="col">Slots</th>
                <th scope="col">CPU</th>
                <th scope="col">Memory</th>
                <th scope="col">Disk free</th>
                <th scope="col">Load</th>
                <th scope="col">Heartbeat</th>
                {can.admin ? <th scope="col">Actions</th> : null}
              </tr>
            </thead>
            <tbody>
              {shown.map((w) => (
                <WorkerRow
                  key={w.id}
                  worker={w}
                  now={now}
                  admin={can.admin}
                  onAction={(kind) => setDialog({ kind, worker: w })}
                  onChanged={() => void workers.reload()}
                />
              ))}
            </tbody>
          </table>
        </div>
      ) : null}

      {dialog?.kind === 'maintenance' ? (
        <MaintenanceDialog
          worker={dialog.worker}
          onClose={() => setDialog(null)}
          onSubmit={(comment) =>
            done(`Maintenance requested for ${dialog.worker.name}`, () =>
              post(`/v1/workers/${seg(dialog.worker.name)}/maintenance`, { on: true, comment }),
            )
          }
        />
      ) : null}
      {dialog?.kind === 'edit' ? (
        <EditDialog
          worker={dialog.worker}
          onClose={() => setDialog(null)}
          onSubmit={(change) =>
            done(`Updated ${dialog.worker.name}`, () => patch(`/v1/workers/${seg(dialog.worker.name)}`, change))
          }
        />
      ) : null}
      {dialog?.kind === 'drain' ? (
        <ConfirmDialog
          title={`Drain ${dialog.worker.name}?`}
          confirm="Drain and stop the worker"
          onClose={() => setDialog(null)}
          onConfirm={() =>
            done(`${dialog.worker.name} is draining`, () => post(`/v1/workers/${seg(dialog.worker.name)}/drain`))
          }
        >
          <p>
            The worker takes no new tasks, lets its {plural(dialog.worker.runningWorkloads, 'running task')} finish (up
            to its drain timeout), then stops and shows as offline. A supervisor that restarts it (systemd, a Swarm
            service) brings it back as a fresh worker.
          </p>
        </ConfirmDialog>
      ) : null}
      {dialog?.kind === 'forget' ? (
        <ConfirmDialog
          title={`Forget ${dialog.worker.name}?`}
          confirm="Forget the worker"
          onClose={() => setDialog(null)}
          onConfirm={() => done(`Forgot ${dialog.worker.name}`, () => del(`/v1/workers/${seg(dialog.worker.name)}`))}
        >
          <p>
            {dialog.worker.name} is {label(dialog.worker.state)}. Forgetting removes it from this list; its finished
            workloads stay, without the worker’s name. If it comes back, it registers as a new worker.
          </p>
        </ConfirmDialog>
      ) : null}
    </section>
  );
}

function WorkerRow(props: {
  worker: Worker;
  now: number;
  admin: boolean;
  onAction: (kind: 'maintenance' | 'edit' | 'drain' | 'forget') => void;
  onChanged: () => void;
}) {
  const w = props.worker;
  const m = w.metrics;
  const gone = GONE.has(w.state);
  const silentFor = (props.now - Date.parse(w.lastHeartbeat)) / 1000;
  return (
    <tr data-worker={w.name} aria-label={`worker ${w.name}`} class={gone ? 'row-gone' : undefined}>
      <th scope="row" data-label="Worker">
        <span class="strong">{w.name}</span>
        <span class="sub">
          {w.runtime ?? '–'}
          {w.version ? ` · ${w.version}` : ''}
          {Object.keys(w.labels).length
            ? ` · ${Object.entries(w.labels)
                .map(([k, v]) => `${k}=${v}`)
                .join(', ')}`
            : ''}
        </span>
      </th>
      <td data-label="State">
        <StateBadge state={w.state} />
        {w.draining && w.state !== 'draining' && !gone ? <span class="sub">draining</span> : null}
        {w.maintenanceComment ? (
          <span class="sub comment" title="maintenance comment">
            “{w.maintenanceComment}”
          </span>
        ) : null}
      </td>
      <td data-label="Queues">
        <span class="chips">
          {w.queues.map((q) => (
            <a key={q} class="chip" href={href(['workloads'], { queue: q })}>
              {q}
            </a>
          ))}
        </span>
      </td>
      <td data-label="Slots">
        <Meter
          value={gone ? undefined : w.usedSlots}
          max={w.concurrency}
          text={gone ? `– / ${w.concurrency}` : `${w.usedSlots} / ${w.concurrency}`}
          label={`slots used of ${w.concurrency}`}
        />
        {w.runningWorkloads > 0 ? (
          <a class="sub" href={href(['workloads'], { worker: w.name })}>
            {plural(w.runningWorkloads, 'task')}
          </a>
        ) : null}
      </td>
      <td data-label="CPU">
        <Meter value={m.cpuPercent} max={100} text={percent(m.cpuPercent)} label="CPU busy" />
      </td>
      <td data-label="Memory">
        <Meter
          value={m.memoryUsedBytes}
          max={m.memoryTotalBytes}
          text={m.memoryTotalBytes ? `${bytes(m.memoryUsedBytes)} / ${bytes(m.memoryTotalBytes)}` : '–'}
          label="memory used"
        />
      </td>
      <td data-label="Disk free">
        <Meter
          value={
            m.diskTotalBytes !== undefined && m.diskFreeBytes !== undefined
              ? m.diskTotalBytes - m.diskFreeBytes
              : undefined
          }
          max={m.diskTotalBytes}
          text={m.diskTotalBytes ? `${bytes(m.diskFreeBytes)} of ${bytes(m.diskTotalBytes)}` : '–'}
          label="disk used"
        />
      </td>
      <td data-label="Load" class="nowrap" title="load average over 1, 5 and 15 minutes">
        {m.load1 === undefined ? '–' : `${m.load1.toFixed(2)} ${m.load5?.toFixed(2)} ${m.load15?.toFixed(2)}`}
      </td>
      <td data-label="Heartbeat">
        <time
          dateTime={w.lastHeartbeat}
          title={time(w.lastHeartbeat)}
          class={!gone && silentFor > 30 ? 'late' : undefined}
        >
          {ago(w.lastHeartbeat, props.now)}
        </time>
      </td>
      {props.admin ? (
        <td data-label="Actions">
          <div class="actions">
            {gone ? (
              <button
                type="button"
                class="small danger"
                onClick={() => props.onAction('forget')}
                aria-label={`Forget ${w.name}`}
              >
                Forget…
              </button>
            ) : (
              <>
                {w.maintenance ? (
                  <MaintenanceOff worker={w} onDone={props.onChanged} />
                ) : (
                  <button
                    type="button"
                    class="small"
                    onClick={() => props.onAction('maintenance')}
                    aria-label={`Maintenance on for ${w.name}`}
                  >
                    Maintenance…
                  </button>
                )}
                <button
                  type="button"
                  class="small"
                  onClick={() => props.onAction('edit')}
                  aria-label={`Edit ${w.name}`}
                >
                  Edit…
                </button>
                {w.draining ? null : (
                  <button
                    type="button"
                    class="small"
                    onClick={() => props.onAction('drain')}
                    aria-label={`Drain ${w.name}`}
                  >
                    Drain…
                  </button>
                )}
              </>
            )}
          </div>
        </td>
      ) : null}
    </tr>
  );
}

function MaintenanceOff({ worker, onDone }: { worker: Worker; onDone: () => void }) {
  const [busy, setBusy] = useState(false);
  return (
    <button
      type="button"
      class="small"
      disabled={busy}
      aria-label={`End maintenance for ${worker.name}`}
      onClick={async () => {
        setBusy(true);
        try {
          await post(`/v1/workers/${seg(worker.name)}/maintenance`, { on: false });
          announce(`Maintenance ended for ${worker.name}`);
          onDone();
        } catch (error) {
          announce(error instanceof ApiError ? error.message : String(error), 'error');
        } finally {
          setBusy(false);
        }
      }}
    >
      End maintenance
    </button>
  );
}

function MaintenanceDialog(props: { worker: Worker; onClose: () => void; onSubmit: (comment: string) => void }) {
  const [comment, setComment] = useState('');
  return (
    <Dialog title={`Maintenance for ${props.worker.name}`} onClose={props.onClose}>
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          props.onSubmit(comment.trim());
        }}
      >
        <p>
          The worker takes no new tasks; those running finish (“maintenance pending”), then it waits in maintenance mode
          until you end it.
        </p>
        <label for="maintenance-comment">Comment (shown to everyone who looks)</label>
        <textarea
          id="maintenance-comment"
          rows={3}
          maxLength={1000}
          value={comment}
          placeholder="e.g. kernel update, back at 14:00"
          onInput={(e) => setComment((e.target as HTMLTextAreaElement).value)}
        />
        <div class="dialog-actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary">
            Start maintenance
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function EditDialog(props: {
  worker: Worker;
  onClose: () => void;
  onSubmit: (change: { concurrency?: number; addQueues?: string[]; removeQueues?: string[] }) => void;
}) {
  const [concurrency, setConcurrency] = useState(String(props.worker.concurrency));
  const [queues, setQueues] = useState(props.worker.queues.join(', '));
  const [error, setError] = useState<string | null>(null);
  return (
    <Dialog title={`Edit ${props.worker.name}`} onClose={props.onClose}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const n = Number(concurrency);
          const wanted = [...new Set(queues.split(/[\s,]+/).filter(Boolean))];
          if (!Number.isInteger(n) || n < 1)
            return setError('Concurrency must be a whole number of slots, at least 1.');
          if (wanted.length === 0) return setError('Give the worker at least one queue.');
          const addQueues = wanted.filter((q) => !props.worker.queues.includes(q));
          const removeQueues = props.worker.queues.filter((q) => !wanted.includes(q));
          props.onSubmit({
            ...(n !== props.worker.concurrency ? { concurrency: n } : {}),
            ...(addQueues.length ? { addQueues } : {}),
            ...(removeQueues.length ? { removeQueues } : {}),
          });
        }}
      >
        <label for="edit-concurrency">Concurrency (slots)</label>
        <input
          id="edit-concurrency"
          type="number"
          min={1}
          step={1}
          inputMode="numeric"
          value={concurrency}
          onInput={(e) => setConcurrency((e.target as HTMLInputElement).value)}
        />
        <label for="edit-queues">Queues (comma-separated)</label>
        <input id="edit-queues" value={queues} onInput={(e) => setQueues((e.target as HTMLInputElement).value)} />
        <p class="help">Takes effect at the worker’s next poll; running tasks are not affected.</p>
        {error ? (
          <p class="field-error" role="alert">
            {error}
          </p>
        ) : null}
        <div class="dialog-actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary">
            Save
          </button>
        </div>
      </form>
    </Dialog>
  );
}

export function ConfirmDialog(props: {
  title: string;
  confirm: string;
  onClose: () => void;
  onConfirm: () => void | Promise<void>;
  children: ComponentChildren;
}) {
  const [busy, setBusy] = useState(false);
  return (
    <Dialog title={props.title} onClose={props.onClose}>
      {props.children}
      <div class="dialog-actions">
        <button type="button" onClick={props.onClose}>
          Keep it
        </button>
        <button
          type="button"
          class="primary danger"
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            try {
              await props.onConfirm();
            } finally {
              setBusy(false);
            }
          }}
        >
          {props.confirm}
        </button>
      </div>
    </Dialog>
  );
}
