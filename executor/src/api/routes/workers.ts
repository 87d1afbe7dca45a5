import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { LIMITS } from '../../domain/limits.ts';
import { queueName } from '../../domain/workload.ts';
import type { ExecutorService } from '../../service/executor-service.ts';
import { noContent, replies, workerView } from '../schemas.ts';

const nameParams = z.object({ name: z.string().min(1).max(LIMITS.nameLength) });

/** Operators' view of the pull workers: list, maintenance, drain, forget, queues and concurrency at runtime. */
export function workerAdminRoutes(service: ExecutorService): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/v1/workers',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'Pull workers with state, slots and metrics',
          tags: ['workers'],
          response: replies({ 200: z.object({ workers: z.array(workerView) }) }),
        },
      },
      async () => ({ workers: await service.pool.workers.list() }),
    );

    app.get(
      '/v1/workers/:name',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'One worker',
          tags: ['workers'],
          params: nameParams,
          response: replies({ 200: workerView }, [404, 414]),
        },
      },
      async (request) => service.pool.workers.get(request.params.name),
    );

    app.post(
      '/v1/workers/:name/maintenance',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Maintenance on (stop new leases, drain) or off',
          tags: ['workers'],
          params: nameParams,
          body: z.object({ on: z.boolean(), comment: z.string().max(LIMITS.commentLength).optional() }).strict(),
          response: replies({ 200: workerView }, [404, 409, 414]),
        },
      },
      async (request) =>
        service.pool.workers.setMaintenance(request.params.name, request.body.on, request.body.comment ?? null),
    );

    app.post(
      '/v1/workers/:name/drain',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Drain and leave: no new leases; running tasks finish, then the worker deregisters (as on SIGINT)',
          tags: ['workers'],
          params: nameParams,
          response: replies({ 200: workerView }, [404, 409, 414]),
        },
      },
      async (request) => service.pool.workers.requestDrain(request.params.name),
    );

    app.delete(
      '/v1/workers/:name',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Forget a worker that is offline or lost (a live one is a 409: drain it first)',
          tags: ['workers'],
          params: nameParams,
          response: replies({ 204: noContent }, [404, 409, 414]),
        },
      },
      async (request, reply) => {
        await service.pool.workers.forgetGone(request.params.name);
        reply.status(204);
      },
    );

    app.patch(
      '/v1/workers/:name',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Add or remove queues, change concurrency',
          tags: ['workers'],
          params: nameParams,
          body: z
            .object({
              addQueues: z.array(queueName).max(100).optional(),
              removeQueues: z.array(queueName).max(100).optional(),
              concurrency: z.number().int().min(1).max(LIMITS.maxConcurrency).optional(),
            })
            .strict(),
          response: replies({ 200: workerView }, [404, 409, 414]),
        },
      },
      async (request) => {
        const b = request.body;
        return service.pool.workers.update(request.params.name, {
          ...(b.addQueues ? { addQueues: b.addQueues } : {}),
          ...(b.removeQueues ? { removeQueues: b.removeQueues } : {}),
          ...(b.concurrency ? { concurrency: b.concurrency } : {}),
        });
      },
    );
  };
}
