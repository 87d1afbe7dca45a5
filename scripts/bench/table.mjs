// The side-by-side table of `npm run bench -- --vs ...`: one row per measure, one column per system, and
// airfleet's ratio to each peer, written so that a ratio above 1 always means airfleet does better (a peer's
// latency or CPU over airfleet's, airfleet's rate over a peer's).

export const COLUMNS = [
  { key: 'edge3-default', title: 'edge3 (5 s poll)' },
  { key: 'edge3-1s', title: 'edge3 (1 s poll)' },
  { key: 'celery', title: 'celery' },
];

const round = (x, d = 1) =>
  x === null || x === undefined || Number.isNaN(x) ? null : Math.round(x * 10 ** d) / 10 ** d;

/**
 * Rows of the table from the measured scenarios: `pull[workers] = { airfleet, 'edge3-default', 'edge3-1s' }`
 * and `push = { airfleet, celery }`, each a normalised record (see bench.mjs `vsRecord`).
 */
export function vsRows({ pull, push, rate, backlog }) {
  const rows = [];
  const add = (measure, better, values) => rows.push({ measure, better, values });
  for (const [workers, byPeer] of Object.entries(pull)) {
    const w = `${Number(workers).toLocaleString('en')} workers`;
    const pick = (f) => Object.fromEntries(Object.entries(byPeer).map(([k, r]) => [k, f(r)]));
    add(
      `pull, ${w}: queue→worker p50 at ${rate}/s (ms)`,
      'lower',
      pick((r) => r.p50Ms),
    );
    add(
      `pull, ${w}: queue→worker p99 at ${rate}/s (ms)`,
      'lower',
      pick((r) => r.p99Ms),
    );
    add(
      `pull, ${w}: jobs/s from a backlog of ${backlog.toLocaleString('en')}`,
      'higher',
      pick((r) => r.perSecond),
    );
    add(
      `pull, ${w}: worker API requests/s at ${rate}/s`,
      null,
      pick((r) => r.requestsPerSecond),
    );
    add(
      `pull, ${w}: server CPU ms per job at ${rate}/s`,
      'lower',
      pick((r) => r.serverCpuMsPerJob),
    );
    add(
      `pull, ${w}: PostgreSQL CPU ms per job at ${rate}/s`,
      'lower',
      pick((r) => r.dbCpuMsPerJob),
    );
    add(
      `pull, ${w}: failed requests`,
      'lower',
      pick((r) => r.failedRequests),
    );
  }
  if (push) {
    const pick = (f) => Object.fromEntries(Object.entries(push).map(([k, r]) => [k, f(r)]));
    add(
      `push (local | celery): submit→start p50 at ${rate}/s (ms)`,
      'lower',
      pick((r) => r.p50Ms),
    );
    add(
      `push (local | celery): submit→start p99 at ${rate}/s (ms)`,
      'lower',
      pick((r) => r.p99Ms),
    );
    add(
      `push (local | celery): tasks/s from a backlog of ${backlog.toLocaleString('en')}`,
      'higher',
      pick((r) => r.perSecond),
    );
    add(
      `push (local | celery): worker-side CPU ms per task at ${rate}/s`,
      'lower',
      pick((r) => r.serverCpuMsPerJob),
    );
    add(
      `push (local | celery): PostgreSQL | Redis CPU ms per task at ${rate}/s`,
      'lower',
      pick((r) => r.dbCpuMsPerJob),
    );
  }
  return rows;
}

/** airfleet's ratio to a peer on one row, > 1 when airfleet does better; null when either is missing. */
export function ratio(row, peer) {
  const a = row.values.airfleet;
  const p = row.values[peer];
  if (row.better === null || a === null || a === undefined || p === null || p === undefined) return null;
  if (row.better === 'lower') return a === 0 ? (p === 0 ? 1 : Number.POSITIVE_INFINITY) : p / a;
  return p === 0 ? (a === 0 ? 1 : Number.POSITIVE_INFINITY) : a / p;
}

const cell = (v) => {
  if (v === null || v === undefined) return '';
  if (typeof v !== 'number') return String(v);
  return Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en') : String(round(v, 1));
};
const ratioCell = (r) =>
  r === null ? '' : r === Number.POSITIVE_INFINITY ? '∞' : `${r >= 10 ? Math.round(r) : round(r, 2)}×`;

/** The table as text (aligned columns), for the console and for README. */
export function formatVs(rows) {
  const present = COLUMNS.filter((c) => rows.some((r) => r.values[c.key] !== undefined));
  const header = ['measure', 'airfleet', ...present.map((c) => c.title), ...present.map((c) => `vs ${c.title}`)];
  const body = rows.map((r) => [
    r.measure,
    cell(r.values.airfleet),
    ...present.map((c) => cell(r.values[c.key])),
    ...present.map((c) => ratioCell(ratio(r, c.key))),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const fmt = (cols) => cols.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...body.map(fmt)].join('\n');
}
