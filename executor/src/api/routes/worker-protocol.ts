import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { attemptNumber, MAX_OFFSET, wholeNumber } from '../../domain/fields.ts';
import { LIMITS } from '../../domain/limits.ts';
import { FAILURE_REASONS } from '../../domain/states.ts';
import { queueName } from '../../domain/workload.ts';
import { ForbiddenError } from '../../errors.ts';
import type { ExecutorService } from '../../service/executor-service.ts';
import { LOG_STREAMS } from '../../store/logs.ts';
import { workerIdOf } from '../auth.ts';
import { heartbeatView, noContent, pollView, replies, workerView, workloadView } from '../schemas.ts';

const running = z.array(z.object({ workloadId: z.uuid(), attempt: attemptNumber }).strict()).max(LIMITS.maxConcurrency);
const measure = z.number().min(0).max(Number.MAX_SAFE_INTEGER);
const metrics = z
  .object({
    cpuPercent: z.number().min(0).max(100_000),
    memoryUsedBytes: measure,
    memoryTotalBytes: measure,
    diskFreeBytes: measure,
    diskTotalBytes: measure,
    load1: measure,
    load5: measure,
    load15: measure,
  })
  .partial()
  .strict();

/** The pull-worker protocol: register, heartbeat, long-poll for leases, report, upload logs, leave. */
export function workerProtocolRoutes(service: ExecutorService): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/v1/worker/register',
      {
        config: { auth: 'enroll' },
        schema: {
          summary: 'Register a worker with an enrollment token; returns the worker its own token',
          tags: ['worker protocol'],
          body: z
            .object({
              name: z
                .string()
                .min(1)
                .max(LIMITS.nameLength)
                .regex(/^[A-Za-z0-9_.-]+$/, 'name may contain only letters, digits and _ . -'),
              queues: z.array(queueName).min(1, 'a worker needs at least one queue').max(100),
              concurrency: z.number().int().min(1).max(LIMITS.maxConcurrency),
              labels: z
                .record(z.string().min(1).max(64), z.string().max(256))
                .refine((labels) => Object.keys(labels).length <= LIMITS.labels, {
                  message: `labels may have at most ${LIMITS.labels} entries`,
                })
                .default({}),
              runtime: z.enum(['process', 'docker']),
              version: z.string().max(64),
              previousToken: z
                .string()
                .max(200)
                .optional()
                .describe("The worker's own token from before a restart: takes its name back and keeps its id"),
              resume: running
                .optional()
                .describe('Attempts of the previous process whose end this worker recorded and will report now'),
            })
            .strict(),
          response: replies(
            {
              201: z
                .object({
                  worker: workerView,
                  token: z.string().describe("the worker's own token: shown once, only its hash is stored"),
                  resumed: z.boolean().describe('the worker took its previous id back (previousToken)'),
                  heartbeatIntervalMs: z.number().int(),
                  heartbeatTimeoutMs: z.number().int(),
                  leaseAckTimeoutMs: z.number().int(),
                })
                .describe('Registered'),
            },
            [409],
          ),
        },
      },
      async (request, reply) => {
        const principal = request.principal;
        const allowed = principal?.kind === 'api' ? principal.queues : null;
        const outside = allowed ? request.body.queues.filter((q) => !allowed.includes(q)) : [];
        if (outside.length > 0) {
          throw new ForbiddenError(
            `queues: this enrollment token may register workers for ${allowed!.join(', ')} only, not ${outside.join(', ')}`,
            { field: 'queues' },
          );
        }
        const { worker, token, resumed } = await service.pool.workers.register(request.body);
        reply.status(201);
        return {
          worker,
          token,
          resumed,
          heartbeatIntervalMs: service.config.heartbeatIntervalMs,
          heartbeatTimeoutMs: service.config.heartbeatTimeoutMs,
          leaseAckTimeoutMs: service.config.leaseAckTimeoutMs,
        };
      },
    );

    app.post(
      '/v1/worker/heartbeat',
      {
        config: { auth: 'worker' },
        schema: {
          summary: 'Heartbeat with system metrics and the tasks the worker runs',
          tags: ['worker protocol'],
          body: z.object({ metrics: metrics.optional(), running, draining: z.boolean().optional() }).strict(),
          response: replies({ 200: heartbeatView }, [404, 409]),
        },
      },
      // When the request arrived, not when it is processed: a heartbeat queued behind a busy event loop was
      // still built before leases made while it waited (worker-registry.ts, compareWithWorker).
      async (request, reply) =>
        service.pool.workers.heartbeat(workerIdOf(request), request.body, Date.now() - reply.elapsedTime),
    );

    app.post(
      '/v1/worker/poll',
      {
        config: { auth: 'worker' },
        schema: {
          summary: 'Long-poll for leases that fit the free slots, cancellations and configuration changes',
          tags: ['worker protocol'],
          body: z
            .object({
              freeSlots: z.number().int().min(0).max(LIMITS.maxConcurrency),
              waitMs: z.number().int().min(0).max(LIMITS.maxWaitMs).default(20_000),
              known: z
                .object({
                  queues: z.array(z.string().max(LIMITS.queueLength)).max(100),
                  concurrency: wholeNumber('known.concurrency', 0, LIMITS.maxConcurrency),
                  maintenance: z.boolean(),
                })
                .optional(),
            })
            .strict(),
          response: replies({ 200: pollView }, [404, 409]),
        },
      },
      async (request, reply) => {
        const hangup = new AbortController();
        reply.raw.on('close', () => {
          if (!reply.raw.writableEnded) hangup.abort();
        });
        return service.pool.leases.poll(workerIdOf(request), request.body, hangup.signal);
      },
    );

    app.post(
      '/v1/worker/report',
      {
        config: { auth: 'worker' },
        schema: {
          summary: 'Report an attempt running or finished (fenced by attempt; idempotent)',
          tags: ['worker protocol'],
          body: z
            .object({
              workloadId: z.uuid(),
              attempt: attemptNumber,
              state: z.enum(['running', 'succeeded', 'failed', 'cancelled', 'released']),
              exitCode: z.number().int().min(-1_000).max(1_000).nullable().optional(),
              reason: z.enum(FAILURE_REASONS).optional(),
              message: z.string().max(4_096).optional(),
              started: z.boolean().optional(),
            })
            .strict(),
          response: replies({ 200: workloadView }, [404, 409]),
        },
      },
      async (request) => service.pool.leases.report(workerIdOf(request), request.body),
    );

    app.post(
      '/v1/worker/logs',
      {
        config: { auth: 'worker' },
        schema: {
          summary:
            'Upload one log chunk (base64) at the stream length the service holds; answers the new length. The same chunk again is a no-op; anything else at a held offset is a 409 log_offset with the stored length to resume from',
          tags: ['worker protocol'],
          body: z
            .object({
              workloadId: z.uuid(),
              attempt: attemptNumber,
              stream: z.enum(LOG_STREAMS),
              offset: wholeNumber('offset', 0, MAX_OFFSET),
              data: z.base64().max(Math.ceil((LIMITS.logChunkBytes * 4) / 3) + 4, 'a chunk may be at most 1 MiB'),
            })
            .strict(),
          response: replies(
            { 200: z.object({ length: z.number().int().describe('bytes the service now holds of this stream') }) },
            [404, 409],
          ),
        },
      },
      async (request) => {
        const b = request.body;
        const length = await service.pool.leases.appendLog(workerIdOf(request), {
          ...b,
          data: Buffer.from(b.data, 'base64'),
        });
        return { length };
      },
    );

    app.post(
      '/v1/worker/deregister',
      {
        config: { auth: 'worker' },
        schema: {
          summary: 'Leave cleanly (state offline)',
          tags: ['worker protocol'],
          response: replies({ 204: noContent }, [404]),
        },
      },
      async (request, reply) => {
        await service.pool.workers.deregister(workerIdOf(request));
        reply.status(204);
      },
    );
  };
}
