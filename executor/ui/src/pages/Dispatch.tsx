import { get } from '../api.ts';
import { LineChart } from '../components/LineChart.tsx';
import { Notice } from '../components/Notice.tsx';
import { duration, number, time } from '../format.ts';
import { useLoader } from '../hooks.ts';
import type { DispatchHistory, Quantiles } from '../types.ts';

/**
 * Dispatch over the last hour, from the service's own histograms (GET /v1/metrics/dispatch, sampled every
 * few seconds by the instance that answers): throughput per second, and latency from entering the queue to
 * dispatch (lease or backend submit) and to the task running.
 */
export function Dispatch() {
  const history = useLoader((signal) => get<DispatchHistory>('/v1/metrics/dispatch', undefined, signal), [], 10_000);
  const h = history.data;
  const samples = h?.samples ?? [];
  const points = samples.map((s) => ({ t: Date.parse(s.at), s }));
  const rate = (pick: (s: (typeof samples)[number]) => number) =>
    points.map(({ t, s }) => [t, pick(s) / s.seconds] as [number, number]);
  const lat = (pick: (s: (typeof samples)[number]) => Quantiles | null, q: 'p50' | 'p90' | 'p99') =>
    points.map(({ t, s }) => [t, pick(s)?.[q] ?? null] as [number, number | null]);
  const any = samples.some((s) => s.submitted + s.dispatched + s.started > 0);
  const from = points.length ? Math.min(points[0]!.t - (h?.intervalSeconds ?? 10) * 1000, Date.now()) : Date.now();
  const perSecond = (v: number) => (v >= 10 ? number(v) : number(v, v >= 1 ? 1 : 2));

  return (
    <section aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title">Dispatch</h1>
        {h ? (
          <p class="summary">
            instance {h.instance}, sampled every {h.intervalSeconds} s since {time(h.since)}
          </p>
        ) : null}
      </div>
      {history.error ? (
        <Notice kind="error" title="Could not load the dispatch figures">
          {history.error.message}
        </Notice>
      ) : null}
      {!h && !history.error ? <p class="loading">Loading…</p> : null}
      {h && !any ? (
        <Notice kind="empty" title="Nothing was dispatched in this period">
          This instance has dispatched no workload since {time(h.since)}. With several instances behind a load balancer,
          each reports what it dispatched itself; Prometheus (<code>/metrics</code>) and the Grafana dashboard sum them.
        </Notice>
      ) : null}
      {h && any ? (
        <div class="chart-grid">
          <LineChart
            title="Throughput, per second"
            from={from}
            to={Date.now()}
            format={perSecond}
            series={[
              { name: 'submitted', tone: 'chart-1', points: rate((s) => s.submitted) },
              { name: 'dispatched', tone: 'chart-2', points: rate((s) => s.dispatched) },
              { name: 'started', tone: 'chart-3', points: rate((s) => s.started) },
              { name: 'finished', tone: 'chart-4', points: rate((s) => s.succeeded + s.failed + s.cancelled) },
            ]}
          />
          <LineChart
            title="Submit → start latency"
            from={from}
            to={Date.now()}
            format={(v) => duration(v)}
            series={[
              { name: 'p50', tone: 'chart-1', points: lat((s) => s.startLatency, 'p50') },
              { name: 'p90', tone: 'chart-2', points: lat((s) => s.startLatency, 'p90') },
              { name: 'p99', tone: 'chart-3', points: lat((s) => s.startLatency, 'p99') },
            ]}
          />
          <LineChart
            title="Submit → dispatch latency (lease or backend submit)"
            from={from}
            to={Date.now()}
            format={(v) => duration(v)}
            series={[
              { name: 'p50', tone: 'chart-1', points: lat((s) => s.dispatchLatency, 'p50') },
              { name: 'p99', tone: 'chart-3', points: lat((s) => s.dispatchLatency, 'p99') },
            ]}
          />
        </div>
      ) : null}
      {h ? (
        <>
          <h2>Since this instance started</h2>
          <div class="table-wrap">
            <table class="table cards">
              <thead>
                <tr>
                  <th scope="col">Latency</th>
                  <th scope="col" class="num">
                    Workloads
                  </th>
                  <th scope="col" class="num">
                    Mean
                  </th>
                  <th scope="col" class="num">
                    p50
                  </th>
                  <th scope="col" class="num">
                    p90
                  </th>
                  <th scope="col" class="num">
                    p99
                  </th>
                </tr>
              </thead>
              <tbody>
                <TotalRow name="submit → start" q={h.total.startLatency} />
                <TotalRow name="submit → dispatch" q={h.total.dispatchLatency} />
              </tbody>
            </table>
          </div>
          <p class="help">
            Quantiles are estimated from the histogram buckets (airfleet_start_latency_seconds,
            airfleet_dispatch_latency_seconds), as Prometheus’ histogram_quantile does.
          </p>
        </>
      ) : null}
    </section>
  );
}

function TotalRow({ name, q }: { name: string; q: Quantiles | null }) {
  return (
    <tr>
      <th scope="row" data-label="Latency">
        {name}
      </th>
      <td data-label="Workloads" class="num">
        {q ? number(q.count) : 0}
      </td>
      <td data-label="Mean" class="num">
        {q ? duration(q.mean) : '–'}
      </td>
      <td data-label="p50" class="num">
        {q ? duration(q.p50) : '–'}
      </td>
      <td data-label="p90" class="num">
        {q ? duration(q.p90) : '–'}
      </td>
      <td data-label="p99" class="num">
        {q ? duration(q.p99) : '–'}
      </td>
    </tr>
  );
}
