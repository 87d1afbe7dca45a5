import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { LIMITS } from '../../domain/limits.ts';
import type { ExecutorService } from '../../service/executor-service.ts';
import { SCOPES } from '../../store/tokens.ts';

/** Health (the only unauthenticated endpoints), readiness, metrics, the OpenAPI document and tokens. */
export function systemRoutes(service: ExecutorService, openapi: () => unknown): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/healthz',
      { config: { auth: 'public' }, schema: { summary: 'Liveness', tags: ['system'] } },
      async () => ({
        status: 'ok',
      }),
    );

    app.get(
      '/readyz',
      { config: { auth: 'public' }, schema: { summary: 'Readiness: the database answers', tags: ['system'] } },
      async (_request, reply) => {
        try {
          await service.db.query('SELECT 1');
          return { status: 'ready', database: service.db.kind };
        } catch (error) {
          reply.status(503).header('retry-after', '1');
          return { status: 'unavailable', message: (error as Error).message };
        }
      },
    );

    app.get(
      '/metrics',
      { config: { auth: 'read' }, schema: { summary: 'Prometheus metrics', tags: ['system'] } },
      async (_request, reply) => {
        reply.header('content-type', service.metrics.registry.contentType);
        return service.metrics.registry.metrics();
      },
    );

    app.get('/openapi.json', { config: { auth: 'read' }, schema: { hide: true } }, async () => openapi());

    app.post(
      '/v1/tokens',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Create an API token; the secret is shown once and only its hash is stored',
          tags: ['tokens'],
          body: z
            .object({
              name: z.string().min(1).max(LIMITS.nameLength),
              scopes: z.array(z.enum(SCOPES)).min(1, 'give at least one scope: submit, read, admin or enroll'),
            })
            .strict(),
        },
      },
      async (request, reply) => {
        const { token, record } = await service.tokens.create(request.body.name, request.body.scopes);
        reply.status(201);
        return { token, ...record };
      },
    );

    app.get(
      '/v1/tokens',
      { config: { auth: 'admin' }, schema: { summary: 'List tokens (never their secrets)', tags: ['tokens'] } },
      async () => ({ tokens: await service.tokens.list() }),
    );

    app.delete(
      '/v1/tokens/:id',
      {
        config: { auth: 'admin' },
        schema: { summary: 'Revoke a token', tags: ['tokens'], params: z.object({ id: z.string().max(64) }) },
      },
      async (request, reply) => {
        await service.tokens.revoke(request.params.id);
        reply.status(204);
      },
    );
  };
}
