import swagger from '@fastify/swagger';
import Fastify, { type FastifyServerOptions, LogController } from 'fastify';
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { LIMITS } from '../domain/limits.ts';
import { type ExecutorService, VERSION } from '../service/executor-service.ts';
import { authHook } from './auth.ts';
import { errorHandler } from './errors.ts';
import { systemRoutes } from './routes/system.ts';
import { workerProtocolRoutes } from './routes/worker-protocol.ts';
import { workerAdminRoutes } from './routes/workers.ts';
import { workloadRoutes } from './routes/workloads.ts';

/**
 * Fastify builds its default compilers (Ajv for validation, fast-json-stringify for serialization) unless it
 * is given factories for them, and loads both even when every route uses others (~3.5 MB of resident memory
 * the service has no use for). These factories hand it the zod compilers from the start. Their types are
 * written for Ajv-style compilers; the call is the same (`{ schema, method, url, httpPart }`).
 */
const compilersFactory = {
  buildValidator: () => validatorCompiler,
  buildSerializer: () => serializerCompiler,
} as unknown as NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;

/** The HTTP API over an ExecutorService. Not listening yet: call `listen` on the result. */
export async function buildApi(service: ExecutorService, logger: Logger) {
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: LIMITS.bodyBytes,
    // Long-polls park for up to a minute; keep sockets open a little longer than that.
    keepAliveTimeout: 65_000,
    requestTimeout: LIMITS.maxWaitMs + 30_000,
    // Requests are logged at debug: at thousands per second, info-level request logs would cost more than
    // the requests. Authorization headers are never logged.
    logController: new LogController({ disableRequestLogging: true }),
    schemaController: { compilersFactory },
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.decorateRequest('principal', null);
  app.addHook('onRequest', authHook(service));
  app.addHook('onResponse', async (request, reply) => {
    request.log.debug({ method: request.method, url: request.url, status: reply.statusCode }, 'request');
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'airfleet executor API',
        version: VERSION,
        description:
          'Submit and watch workloads; the pull-worker protocol; operations. Bearer tokens on every endpoint but health.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(systemRoutes(service, () => app.swagger()));
  await app.register(workloadRoutes(service));
  await app.register(workerAdminRoutes(service));
  await app.register(workerProtocolRoutes(service));
  return app;
}

export type Api = Awaited<ReturnType<typeof buildApi>>;
