import { Gauge, type Registry } from 'prom-client';
import type { Db } from '../store/db.ts';
import { type PoolStatus, readPoolStatuses } from '../store/pool-status.ts';

/**
 * The pools' gauges, read at scrape time from what the leader's autoscaler last published, so every
 * instance exports the same values (one read per scrape, shared by the gauges). Pool names are
 * configuration, not user input: their number is bounded by the config (200).
 */
export function registerPoolGauges(registry: Registry, db: Db): void {
  let cached: { at: number; value: Promise<Map<string, PoolStatus>> } | null = null;
  const statuses = () => {
    if (!cached || Date.now() - cached.at > 1_000) {
      cached = { at: Date.now(), value: readPoolStatuses(db) };
      cached.value.catch(() => {
        cached = null;
      });
    }
    return cached.value;
  };
  const perPool = (name: string, help: string, read: (s: PoolStatus) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['pool'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const s of (await statuses()).values()) this.set({ pool: s.pool }, read(s));
      },
    });
  perPool('airfleet_pool_desired_workers', 'Workers the backlog asks for, within the bounds', (s) => s.desired);
  perPool('airfleet_pool_target_workers', 'Capacity the platform is asked to keep', (s) => s.target);
  perPool('airfleet_pool_actual_workers', 'Workers the platform reports running', (s) => s.running);
  perPool(
    'airfleet_pool_registered_workers',
    'Workers of the pool registered with the service and live',
    (s) => s.workers,
  );
  perPool('airfleet_pool_scaling_in_workers', 'Workers chosen for scale-in, draining', (s) => s.scalingIn.length);
  new Gauge({
    name: 'airfleet_pool_backlog_slots',
    help: "Pool slots of the pool's queues: queued, and running (leased or started)",
    labelNames: ['pool', 'kind'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const s of (await statuses()).values()) {
        this.set({ pool: s.pool, kind: 'queued' }, s.queuedSlots);
        this.set({ pool: s.pool, kind: 'running' }, s.runningSlots);
      }
    },
  });
}
