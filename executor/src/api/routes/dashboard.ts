import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { LIMITS } from '../../domain/limits.ts';
import type { ExecutorService } from '../../service/executor-service.ts';
import type { MetricsHistory } from '../../service/metrics-history.ts';
import { eventsOfWorkload, feedHead } from '../../store/events.ts';
import { feedEventView, replies } from '../schemas.ts';

const quantilesView = z
  .object({
    count: z.number().describe('observations'),
    mean: z.number(),
    p50: z.number(),
    p90: z.number(),
    p99: z.number(),
  })
  .nullable()
  .describe('seconds, estimated from the histogram buckets; null when nothing was observed');

const dispatchHistoryView = z
  .object({
    instance: z.string().describe('the service instance that answers: each one reports what it dispatched'),
    intervalSeconds: z.number(),
    since: z.iso.datetime({ offset: true }),
    samples: z.array(
      z.object({
        at: z.iso.datetime({ offset: true }).describe('end of the interval'),
        seconds: z.number(),
        submitted: z.number(),
        dispatched: z.number().describe('leased to a worker or submitted to a backend'),
        started: z.number(),
        succeeded: z.number(),
        failed: z.number(),
        cancelled: z.number(),
        dispatchLatency: quantilesView.describe('queue → dispatch (airfleet_dispatch_latency_seconds)'),
        startLatency: quantilesView.describe('queue → running (airfleet_start_latency_seconds)'),
      }),
    ),
    total: z.object({ dispatchLatency: quantilesView, startLatency: quantilesView }),
  })
  .meta({ id: 'DispatchHistory' });

/**
 * What the dashboard reads besides the operations API: where the change feed ends now (a live list starts
 * there rather than replaying the feed), one workload's attempts, and dispatch figures over the last hour.
 */
export function dashboardRoutes(service: ExecutorService, history: MetricsHistory): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/v1/events/head',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'The newest sequence number of the change feed: read from there to get only what comes next',
          tags: ['workloads'],
          response: replies({ 200: z.object({ last: z.number().int().describe('pass as `after`') }) }),
        },
      },
      async () => ({ last: await feedHead(service.db) }),
    );

    app.get(
      '/v1/workloads/:id/events',
      {
        config: { auth: 'read' },
        schema: {
          summary: "One workload's state changes, oldest first: its attempts and how each went",
          tags: ['workloads'],
          params: z.object({ id: z.string().min(1).max(LIMITS.keyLength) }),
          response: replies({ 200: z.object({ events: z.array(feedEventView) }) }, [404, 414]),
        },
      },
      async (request) => {
        const workload = await service.getWorkload(request.params.id);
        return { events: await eventsOfWorkload(service.db, workload.id, 10_000) };
      },
    );

    app.get(
      '/v1/metrics/dispatch',
      {
        config: { auth: 'read' },
        schema: {
          summary: "Dispatch over the last hour, from this instance's histograms: counts and latency per interval",
          tags: ['system'],
          response: replies({ 200: dispatchHistoryView }),
        },
      },
      async () => ({ instance: service.membership.name, ...(await history.history()) }),
    );
  };
}
