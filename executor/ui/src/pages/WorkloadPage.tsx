import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, get, isAbort, post, seg, sleep } from '../api.ts';
import { announce } from '../components/Announcer.tsx';
import { Live } from '../components/Live.tsx';
import { Notice } from '../components/Notice.tsx';
import { StateBadge } from '../components/StateBadge.tsx';
import { useFeed } from '../feed.ts';
import { duration, moment, shellWords, time } from '../format.ts';
import { href } from '../router.ts';
import { useAbilities } from '../session.ts';
import { type FeedEvent, type LogSlice, TERMINAL, type Workload } from '../types.ts';
import { ConfirmDialog } from './Workers.tsx';
import { outcome } from './Workloads.tsx';

/**
 * One workload: what it runs and where, its attempts (from its own change-feed entries) with each one's
 * outcome, why a queued one waits, and its stdout and stderr, followed live while the attempt runs. Cancel
 * for tokens with the submit scope.
 */
export function WorkloadPage({ id }: { id: string }) {
  const can = useAbilities();
  const [workload, setWorkload] = useState<Workload | null>(null);
  const [events, setEvents] = useState<FeedEvent[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const [attempt, setAttempt] = useState<number | null>(null);
  const [confirm, setConfirm] = useState(false);

  const load = async (signal?: AbortSignal) => {
    try {
      const [w, e] = await Promise.all([
        get<Workload>(`/v1/workloads/${seg(id)}`, undefined, signal),
        get<{ events: FeedEvent[] }>(`/v1/workloads/${seg(id)}/events`, undefined, signal),
      ]);
      setWorkload(w);
      setEvents(e.events);
      setError(null);
    } catch (err) {
      if (isAbort(err)) throw err;
      setError(err instanceof ApiError ? err : new ApiError(0, 'error', String(err)));
    }
  };
  const status = useFeed(
    {
      ready: (signal) => load(signal),
      events: (batch) => {
        if (batch.some((e) => e.workloadId === workload?.id || e.workloadId === id || e.key === id)) void load();
      },
    },
    [id],
  );

  if (error?.status === 404) {
    return (
      <Notice kind="empty" title="No such workload">
        No workload has the id or key <code>{id}</code>: it may have finished longer ago than the retention period, or
        the link is wrong. <a href={href(['workloads'])}>See all workloads</a>.
      </Notice>
    );
  }
  if (!workload) {
    return error ? (
      <Notice kind="error" title="Could not load the workload">
        {error.message}
      </Notice>
    ) : (
      <p class="loading">Loading the workload…</p>
    );
  }

  const w = workload;
  const attempts = groupAttempts(events, w);
  const shownAttempt = attempt ?? w.attempt;
  const terminal = TERMINAL.includes(w.state);
  const cancel = async () => {
    try {
      await post(`/v1/workloads/${seg(w.id)}/cancel`);
      announce(`Cancel requested for ${w.key}`);
      setConfirm(false);
      await load();
    } catch (err) {
      announce(err instanceof ApiError ? err.message : String(err), 'error');
    }
  };

  return (
    <section aria-labelledby="page-title">
      <p class="crumbs">
        <a href={href(['workloads'])}>Workloads</a> /
      </p>
      <div class="page-head">
        <h1 id="page-title" class="mono key-title">
          {w.key}
        </h1>
        <StateBadge state={w.state} />
        <Live status={status} />
        {can.submit && !terminal ? (
          <button type="button" class="danger" onClick={() => setConfirm(true)} disabled={w.cancelRequested}>
            {w.cancelRequested ? 'Cancel requested' : 'Cancel…'}
          </button>
        ) : null}
      </div>
      {error ? (
        <Notice kind="error" title="Could not refresh the workload">
          {error.message}
        </Notice>
      ) : null}
      {w.waiting ? (
        <Notice kind="info" title="Why it waits">
          {w.waiting}
        </Notice>
      ) : null}
      {terminal && w.state !== 'succeeded' ? (
        <Notice kind="error" title={`${w.state === 'cancelled' ? 'Cancelled' : 'Failed'}: ${outcome(w)}`}>
          {w.message ?? 'No message was recorded.'}
        </Notice>
      ) : null}

      <dl class="facts">
        <Fact name="Id" value={<span class="mono">{w.id}</span>} />
        <Fact name="Command" value={<code class="command">{shellWords(w.command)}</code>} />
        <Fact name="Queue" value={w.queue} />
        <Fact name="Backend" value={w.backend} />
        <Fact name="Worker" value={w.workerName ?? (w.backendRef ? `ref ${w.backendRef}` : '–')} />
        <Fact name="Slots · priority" value={`${w.poolSlots} · ${w.priorityWeight}`} />
        {w.image ? <Fact name="Image" value={<span class="mono">{w.image}</span>} /> : null}
        <Fact
          name="Attempt"
          value={`${w.attempt} (infrastructure retries ${w.infraRetries} of ${w.maxInfraRetries})`}
        />
        <Fact name="Submitted" value={time(w.createdAt)} />
        <Fact
          name="Started"
          value={
            w.startedAt ? `${time(w.startedAt)} (waited ${duration(secondsBetween(w.queuedAt, w.startedAt))})` : '–'
          }
        />
        <Fact
          name="Finished"
          value={
            w.finishedAt
              ? `${time(w.finishedAt)}${w.startedAt ? ` (ran ${duration(secondsBetween(w.startedAt, w.finishedAt))})` : ''}`
              : '–'
          }
        />
        {Object.keys(w.env).length ? (
          <Fact
            name="Environment"
            value={
              <span class="mono">
                {Object.entries(w.env)
                  .map(([k, v]) => `${k}=${v}`)
                  .join('  ')}
              </span>
            }
          />
        ) : null}
      </dl>

      <h2>Attempts</h2>
      {attempts.length === 0 ? (
        <p class="help">No state change recorded yet.</p>
      ) : (
        <div class="table-wrap">
          <table class="table cards">
            <thead>
              <tr>
                <th scope="col">Attempt</th>
                <th scope="col">States</th>
                <th scope="col">Outcome</th>
                <th scope="col">Logs</th>
              </tr>
            </thead>
            <tbody>
              {attempts.map((a) => (
                <tr key={a.attempt}>
                  <th scope="row" data-label="Attempt">
                    {a.attempt}
                  </th>
                  <td data-label="States">
                    <ol class="timeline">
                      {a.events.map((e) => (
                        <li key={e.seq}>
                          <StateBadge state={e.state} />{' '}
                          <time dateTime={e.at} title={time(e.at)}>
                            {moment(e.at)}
                          </time>
                        </li>
                      ))}
                    </ol>
                  </td>
                  <td data-label="Outcome">{a.outcome}</td>
                  <td data-label="Logs">
                    <button
                      type="button"
                      class="small"
                      aria-pressed={a.attempt === shownAttempt}
                      onClick={() => setAttempt(a.attempt)}
                    >
                      {a.attempt === shownAttempt ? 'Shown below' : 'Show logs'}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <h2>Logs of attempt {shownAttempt}</h2>
      <div class="logs">
        <LogView key={`${w.id}/${shownAttempt}/stdout`} id={w.id} attempt={shownAttempt} stream="stdout" />
        <LogView key={`${w.id}/${shownAttempt}/stderr`} id={w.id} attempt={shownAttempt} stream="stderr" />
      </div>

      {confirm ? (
        <ConfirmDialog
          title={`Cancel ${w.key}?`}
          confirm="Cancel the workload"
          onClose={() => setConfirm(false)}
          onConfirm={cancel}
        >
          <p>
            {w.state === 'queued'
              ? 'It has not started: it is cancelled at once.'
              : 'Its task is stopped through its worker or backend (SIGTERM, then SIGKILL after the grace period); the workload shows as cancelled once that is confirmed.'}
          </p>
        </ConfirmDialog>
      ) : null}
    </section>
  );
}

function Fact({ name, value }: { name: string; value: ComponentChildren }) {
  return (
    <div>
      <dt>{name}</dt>
      <dd>{value}</dd>
    </div>
  );
}

function secondsBetween(a: string, b: string): number {
  return (Date.parse(b) - Date.parse(a)) / 1000;
}

interface AttemptView {
  attempt: number;
  events: FeedEvent[];
  outcome: string;
}

function groupAttempts(events: FeedEvent[], w: Workload): AttemptView[] {
  const by = new Map<number, FeedEvent[]>();
  for (const e of events) by.set(e.attempt, [...(by.get(e.attempt) ?? []), e]);
  return [...by.entries()]
    .sort((a, b) => b[0] - a[0])
    .map(([attempt, list]) => {
      const last = list.at(-1)!;
      const ended = TERMINAL.includes(last.state) || attempt < w.attempt;
      const text =
        attempt === w.attempt
          ? outcome(w) || (ended ? last.state : 'in progress')
          : [last.reason, last.exitCode !== null ? `exit ${last.exitCode}` : null].filter(Boolean).join(', ') ||
            `${last.state}, then retried`;
      return { attempt, events: list, outcome: text };
    });
}

/** Most text kept on screen per stream; older output is dropped from view (never from the service). */
const KEEP_CHARS = 1_000_000;

/**
 * One stream of one attempt, read from offset 0 and followed with the log endpoint's waitMs until the
 * attempt has ended and every byte was read. Bytes are decoded as UTF-8 as a stream, so a character split
 * across two reads comes out whole.
 */
function LogView(props: { id: string; attempt: number; stream: 'stdout' | 'stderr' }) {
  const [text, setText] = useState('');
  const [dropped, setDropped] = useState(0);
  const [state, setState] = useState<'following' | 'complete' | 'error'>('following');
  const [error, setError] = useState<string | null>(null);
  const [follow, setFollow] = useState(true);
  const pre = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    const abort = new AbortController();
    const decoder = new TextDecoder('utf-8');
    let offset = 0;
    let shown = '';
    let droppedChars = 0;
    void (async () => {
      let backoff = 500;
      while (!abort.signal.aborted) {
        try {
          const slice = await get<LogSlice>(
            `/v1/workloads/${seg(props.id)}/logs`,
            { stream: props.stream, attempt: props.attempt, offset, waitMs: 20_000, maxBytes: 262_144 },
            abort.signal,
          );
          const bytes = Uint8Array.from(atob(slice.data), (c) => c.charCodeAt(0));
          offset = slice.nextOffset;
          shown += decoder.decode(bytes, { stream: !slice.complete });
          if (shown.length > KEEP_CHARS) {
            droppedChars += shown.length - KEEP_CHARS;
            shown = shown.slice(-KEEP_CHARS);
          }
          setText(shown);
          setDropped(droppedChars);
          setError(null);
          backoff = 500;
          if (slice.complete) {
            setState('complete');
            return;
          }
        } catch (err) {
          if (isAbort(err) || abort.signal.aborted) return;
          setState('error');
          setError(err instanceof ApiError ? err.message : String(err));
          await sleep(backoff, abort.signal).catch(() => undefined);
          backoff = Math.min(backoff * 2, 10_000);
          setState('following');
        }
      }
    })();
    return () => abort.abort();
  }, [props.id, props.attempt, props.stream]);

  useEffect(() => {
    if (follow && pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [text, follow]);

  const idBase = `log-${props.stream}`;
  return (
    <section class="log" aria-labelledby={`${idBase}-title`}>
      <div class="log-head">
        <h3 id={`${idBase}-title`}>{props.stream}</h3>
        <span class="sub" role="status">
          {state === 'complete' ? 'complete' : state === 'error' ? `retrying: ${error}` : 'following…'}
        </span>
        <label class="inline">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow((e.target as HTMLInputElement).checked)} />{' '}
          Scroll with output
        </label>
      </div>
      {dropped > 0 ? <p class="help">{dropped.toLocaleString()} earlier characters are not shown.</p> : null}
      {/* A read-only text area: focusable and scrollable from the keyboard, its text selectable and copyable. */}
      <textarea
        ref={pre}
        class="log-text"
        readOnly
        wrap="soft"
        spellcheck={false}
        aria-label={`${props.stream} of attempt ${props.attempt}`}
        data-stream={props.stream}
        value={text || (state === 'complete' ? '(empty)' : '')}
      />
    </section>
  );
}
