import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ExecutorService } from '../../service/executor-service.ts';
import { poolView, replies } from '../schemas.ts';

/** The autoscaled pools: configuration, backlog, desired and actual capacity, the last decision. */
export function poolRoutes(service: ExecutorService): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/v1/pools',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'Autoscaled worker pools: backlog, desired and actual workers, the last decision',
          tags: ['workers'],
          querystring: z.object({}).strict(),
          response: replies({ 200: z.object({ pools: z.array(poolView) }) }),
        },
      },
      async () => ({ pools: await service.pools() }),
    );
  };
}
