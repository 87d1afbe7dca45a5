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
  const b = backlog.toLocaleString('en');
  // [measure, which way is better (null: no ratio), the field of the record]
  const PULL = [
    [`queue→worker p50 at ${rate}/s (ms)`, 'lower', 'p50Ms'],
    [`queue→worker p99 at ${rate}/s (ms)`, 'lower', 'p99Ms'],
    [`jobs/s from a backlog of ${b}`, 'higher', 'perSecond'],
    [`worker API requests/s answered at ${rate}/s`, null, 'requestsPerSecond'],
    [`server CPU ms per job at ${rate}/s`, 'lower', 'serverCpuMsPerJob'],
    [`PostgreSQL CPU ms per job at ${rate}/s`, 'lower', 'dbCpuMsPerJob'],
    ['failed requests', null, 'failedRequests'],
    ['jobs not dispatched within the deadline', null, 'undispatched'],
  ];
  const PUSH = [
    [`submit→start p50 at ${rate}/s (ms)`, 'lower', 'p50Ms'],
    [`submit→start p99 at ${rate}/s (ms)`, 'lower', 'p99Ms'],
    [`tasks/s from a backlog of ${b}`, 'higher', 'perSecond'],
    [`worker-side CPU ms per task at ${rate}/s`, 'lower', 'serverCpuMsPerJob'],
    [`PostgreSQL | Redis CPU ms per task at ${rate}/s`, 'lower', 'dbCpuMsPerJob'],
    ['tasks not started within the deadline', null, 'undispatched'],
  ];
  const pick = (records, field) => Object.fromEntries(Object.entries(records).map(([k, r]) => [k, r[field]]));
  for (const [workers, records] of Object.entries(pull)) {
    const prefix = `pull, ${Number(workers).toLocaleString('en')} workers: `;
    for (const [m, better, field] of PULL) rows.push({ measure: prefix + m, better, values: pick(records, field) });
  }
  if (push) {
    for (const [m, better, field] of PUSH) {
      rows.push({ measure: `push (local | celery): ${m}`, better, values: pick(push, field) });
    }
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
  const fmt = (cols) =>
    cols
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...body.map(fmt)].join('\n');
}
