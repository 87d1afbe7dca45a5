import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { MAX_OFFSET, wholeNumberParam } from '../../domain/fields.ts';
import { LIMITS } from '../../domain/limits.ts';
import { WORKLOAD_STATES } from '../../domain/states.ts';
import { BACKENDS, queueName, workloadInput } from '../../domain/workload.ts';
import type { ExecutorService } from '../../service/executor-service.ts';
import { LOG_STREAMS } from '../../store/logs.ts';
import { presentWorkload } from '../present.ts';
import {
  feedEventView,
  logSliceView,
  presentedWorkloadView,
  queueView,
  replies,
  workloadDetailView,
} from '../schemas.ts';

const idParams = z.object({ id: z.string().min(1).max(LIMITS.keyLength) });

const CURSOR_RULE =
  'before must be the `next` value of the previous page: <createdAt as ISO-8601 UTC with milliseconds>|<id>, ' +
  'e.g. 2026-01-31T12:00:00.000Z|0b7e4a52-3c1d-4f7e-9a51-2f7c8d9e0a1b';
const CURSOR = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)\|[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$/;

/** The list cursor, checked whole here: a time PostgreSQL cannot read (year 0, 31 February) is a 400 too. */
const listCursor = z
  .string()
  .max(100, CURSOR_RULE)
  .refine((value) => {
    const at = CURSOR.exec(value)?.[1];
    if (!at || at.startsWith('0000')) return false;
    const ms = Date.parse(at);
    return Number.isFinite(ms) && new Date(ms).toISOString() === at;
  }, CURSOR_RULE);

/** A batch names each workload once: two with one key would both answer for the same stored workload. */
const batchBody = z
  .object({ workloads: z.array(workloadInput).min(1).max(LIMITS.batchSize) })
  .strict()
  .superRefine((batch, ctx) => {
    const first = new Map<string, number>();
    batch.workloads.forEach((w, i) => {
      const seen = first.get(w.key);
      if (seen === undefined) first.set(w.key, i);
      else
        ctx.addIssue({
          code: 'custom',
          path: ['workloads', i, 'key'],
          message: `key repeats workloads.${seen}.key; each workload of a batch needs its own key`,
        });
    });
  });

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
          response: replies(
            {
              200: presentedWorkloadView.describe('Already submitted'),
              201: presentedWorkloadView.describe('Created'),
            },
            [409],
          ),
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
          body: batchBody,
          response: replies(
            {
              200: z.object({
                results: z.array(z.object({ workload: presentedWorkloadView, created: z.boolean() })),
              }),
            },
            [409],
          ),
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
          summary: 'List workloads, newest first (filters: state, queue, backend, worker id)',
          tags: ['workloads'],
          querystring: z.object({
            state: z.enum(WORKLOAD_STATES).optional(),
            queue: queueName.optional(),
            backend: z.enum(BACKENDS).optional(),
            worker: z.uuid('worker must be a worker id (a UUID)').optional(),
            limit: wholeNumberParam('limit', 1, 1_000).default(100),
            before: listCursor.optional(),
          }),
          response: replies({
            200: z.object({
              workloads: z.array(presentedWorkloadView),
              next: z.string().nullable().describe('pass as `before` for the next page; null on the last'),
            }),
          }),
        },
      },
      async (request) => {
        const q = request.query;
        const workloads = await service.listWorkloads({
          state: q.state,
          queue: q.queue,
          backend: q.backend,
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
        schema: {
          summary: 'One workload by id or key',
          tags: ['workloads'],
          params: idParams,
          response: replies({ 200: workloadDetailView }, [404, 414]),
        },
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
          response: replies({ 200: presentedWorkloadView }, [404, 409, 414]),
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
            offset: wholeNumberParam('offset', 0, MAX_OFFSET).default(0),
            attempt: wholeNumberParam('attempt', 1, LIMITS.int32).optional(),
            maxBytes: wholeNumberParam('maxBytes', 1, LIMITS.logChunkBytes).default(256 * 1024),
            waitMs: wholeNumberParam('waitMs', 0, LIMITS.maxWaitMs).default(0),
          }),
          response: replies({ 200: logSliceView }, [404, 414]),
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
            after: wholeNumberParam('after', 0, MAX_OFFSET).default(0),
            limit: wholeNumberParam('limit', 1, 10_000).default(1_000),
            waitMs: wholeNumberParam('waitMs', 0, LIMITS.maxWaitMs).default(0),
            workloadId: z
              .uuid('workloadId must be a workload id (a UUID)')
              .optional()
              .describe("only this workload's events: one waiter per workload reads no one else's"),
          }),
          response: replies({
            200: z.object({
              events: z.array(feedEventView),
              last: z.number().int().describe('pass as `after` for the next read'),
            }),
          }),
        },
      },
      async (request) => {
        const q = request.query;
        const events = await service.readFeed(q.after, q.limit, q.waitMs, q.workloadId);
        return { events, last: events.at(-1)?.seq ?? q.after };
      },
    );

    app.get(
      '/v1/queues',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'Depth and running slots per queue and backend',
          tags: ['queues'],
          response: replies({ 200: z.object({ queues: z.array(queueView) }) }),
        },
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
