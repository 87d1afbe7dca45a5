import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { LIMITS } from '../../domain/limits.ts';
import { WORKLOAD_STATES } from '../../domain/states.ts';
import { workloadInput } from '../../domain/workload.ts';
import type { ExecutorService } from '../../service/executor-service.ts';
import { LOG_STREAMS } from '../../store/logs.ts';
import { presentWorkload } from '../present.ts';

const idParams = z.object({ id: z.string().min(1).max(LIMITS.keyLength) });

export function workloadRoutes(service: ExecutorService): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/v1/workloads',
      {
        config: { auth: 'submit' },
        schema: {
          summary: 'Submit one workload (idempotent by key: 201 when new, 200 with the existing one otherwise)',
          tags: ['workloads'],
          body: workloadInput,
        },
      },
      async (request, reply) => {
        const { workload, created } = await service.submit(request.body);
        reply.status(created ? 201 : 200);
        return presentWorkload(workload, request.principal);
      },
    );

    app.post(
      '/v1/workloads/batch',
      {
        config: { auth: 'submit' },
        schema: {
          summary: `Submit up to ${LIMITS.batchSize} workloads in one transaction`,
          tags: ['workloads'],
          body: z.object({ workloads: z.array(workloadInput).min(1).max(LIMITS.batchSize) }).strict(),
        },
      },
      async (request) => ({
        results: (await service.submitBatch(request.body.workloads)).map((r) => ({
          workload: presentWorkload(r.workload, request.principal),
          created: r.created,
        })),
      }),
    );

    app.get(
      '/v1/workloads',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'List workloads, newest first',
          tags: ['workloads'],
          querystring: z.object({
            state: z.enum(WORKLOAD_STATES).optional(),
            queue: z.string().max(LIMITS.queueLength).optional(),
            worker: z.string().uuid().optional(),
            limit: z.coerce.number().int().min(1).max(1_000).default(100),
            before: z.string().max(100).optional(),
          }),
        },
      },
      async (request) => {
        const q = request.query;
        const workloads = await service.listWorkloads({
          state: q.state,
          queue: q.queue,
          workerId: q.worker,
          limit: q.limit,
          before: q.before,
        });
        const last = workloads.at(-1);
        return {
          workloads: workloads.map((w) => presentWorkload(w, request.principal)),
          next: workloads.length === q.limit && last ? `${last.createdAt}|${last.id}` : null,
        };
      },
    );

    app.get(
      '/v1/workloads/:id',
      {
        config: { auth: 'read' },
        schema: { summary: 'One workload by id or key', tags: ['workloads'], params: idParams },
      },
      async (request) => presentWorkload(await service.describeWorkload(request.params.id), request.principal),
    );

    app.post(
      '/v1/workloads/:id/cancel',
      {
        config: { auth: 'submit' },
        schema: {
          summary: 'Cancel: at once when queued, through its worker when leased or running',
          tags: ['workloads'],
          params: idParams,
        },
      },
      async (request) => presentWorkload(await service.cancel(request.params.id), request.principal),
    );

    app.get(
      '/v1/workloads/:id/logs',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'Log bytes of one stream from an offset; with waitMs, waits for more (follow)',
          tags: ['workloads'],
          params: idParams,
          querystring: z.object({
            stream: z.enum(LOG_STREAMS).default('stdout'),
            offset: z.coerce.number().int().min(0).default(0),
            attempt: z.coerce.number().int().min(1).optional(),
            maxBytes: z.coerce
              .number()
              .int()
              .min(1)
              .max(LIMITS.logChunkBytes)
              .default(256 * 1024),
            waitMs: z.coerce.number().int().min(0).max(LIMITS.maxWaitMs).default(0),
          }),
        },
      },
      async (request) => {
        const q = request.query;
        const slice = await service.readLogs({
          idOrKey: request.params.id,
          attempt: q.attempt,
          stream: q.stream,
          offset: q.offset,
          maxBytes: q.maxBytes,
          waitMs: q.waitMs,
        });
        return {
          attempt: slice.attempt,
          stream: q.stream,
          offset: q.offset,
          nextOffset: slice.nextOffset,
          data: slice.data.toString('base64'),
          complete: slice.complete,
          state: slice.state,
        };
      },
    );

    app.get(
      '/v1/events',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'Change feed: state changes after a sequence number; long-polls up to waitMs when none',
          tags: ['workloads'],
          querystring: z.object({
            after: z.coerce.number().int().min(0).default(0),
            limit: z.coerce.number().int().min(1).max(10_000).default(1_000),
            waitMs: z.coerce.number().int().min(0).max(LIMITS.maxWaitMs).default(0),
          }),
        },
      },
      async (request) => {
        const q = request.query;
        const events = await service.readFeed(q.after, q.limit, q.waitMs);
        return { events, last: events.at(-1)?.seq ?? q.after };
      },
    );

    app.get(
      '/v1/queues',
      {
        config: { auth: 'read' },
        schema: { summary: 'Depth and running slots per queue and backend', tags: ['queues'] },
      },
      async () => {
        const [queues, workers] = await Promise.all([service.queues(), service.pool.workers.list()]);
        return {
          queues: queues.map((q) => ({
            ...q,
            workers: workers.filter((w) => w.queues.includes(q.queue) && w.state !== 'offline' && w.state !== 'lost')
              .length,
          })),
        };
      },
    );
  };
}
