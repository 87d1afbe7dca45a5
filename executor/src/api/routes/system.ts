import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { LIMITS } from '../../domain/limits.ts';
import { queueName } from '../../domain/workload.ts';
import type { ExecutorService } from '../../service/executor-service.ts';
import { SCOPES } from '../../store/tokens.ts';
import { noContent, replies, tokenView } from '../schemas.ts';

/** Health (the only unauthenticated endpoints), readiness, metrics, the OpenAPI document and tokens. */
export function systemRoutes(service: ExecutorService, openapi: () => unknown): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/healthz',
      {
        config: { auth: 'public' },
        schema: {
          summary: 'Liveness',
          tags: ['system'],
          security: [],
          response: { 200: z.object({ status: z.literal('ok') }) },
        },
      },
      async () => ({ status: 'ok' as const }),
    );

    app.get(
      '/readyz',
      {
        config: { auth: 'public' },
        schema: {
          summary: 'Readiness: the database answers',
          tags: ['system'],
          security: [],
          response: {
            200: z.object({ status: z.literal('ready') }),
            503: z.object({ status: z.literal('unavailable') }).describe('Not ready; retry after Retry-After'),
          },
        },
      },
      async (request, reply) => {
        try {
          await service.db.query('SELECT 1');
          return { status: 'ready' as const };
        } catch (error) {
          // Public endpoint: the database's own words (host names, users) go to the service log only.
          request.log.warn({ err: (error as Error).message }, 'readiness check: the database does not answer');
          reply.status(503).header('retry-after', '1');
          return { status: 'unavailable' as const };
        }
      },
    );

    app.get(
      '/metrics',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'Prometheus metrics',
          tags: ['system'],
          response: replies({
            200: {
              description: 'Prometheus text exposition format',
              content: { 'text/plain': { schema: z.string() } },
            },
          }),
        },
      },
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
              scopes: z
                .array(z.enum(SCOPES))
                .min(1, 'give at least one scope: submit, read, admin or enroll')
                .max(SCOPES.length * 4),
              queues: z
                .array(queueName)
                .min(1)
                .max(100)
                .optional()
                .describe('Only with the enroll scope: workers this token registers may serve only these queues'),
            })
            .strict()
            .refine((b) => !b.queues || (b.scopes.length === 1 && b.scopes[0] === 'enroll'), {
              message: 'queues limit enrollment tokens only: give them with scopes ["enroll"] alone',
              path: ['queues'],
            }),
          response: replies({
            201: tokenView
              .extend({ token: z.string().describe('the secret: shown once, only its hash is stored') })
              .describe('Created'),
          }),
        },
      },
      async (request, reply) => {
        const { token, record } = await service.tokens.create(
          request.body.name,
          request.body.scopes,
          request.body.queues ?? null,
        );
        reply.status(201);
        return { token, ...record };
      },
    );

    app.get(
      '/v1/tokens',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'List tokens (never their secrets)',
          tags: ['tokens'],
          response: replies({ 200: z.object({ tokens: z.array(tokenView) }) }),
        },
      },
      async () => ({ tokens: await service.tokens.list() }),
    );

    app.delete(
      '/v1/tokens/:id',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Revoke a token',
          tags: ['tokens'],
          params: z.object({ id: z.string().min(1).max(64) }),
          response: replies({ 204: noContent }, [404, 414]),
        },
      },
      async (request, reply) => {
        await service.tokens.revoke(request.params.id);
        reply.status(204);
      },
    );
  };
}
