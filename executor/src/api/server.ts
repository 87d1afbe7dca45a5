import swagger from '@fastify/swagger';
import Fastify, { type FastifyServerOptions, LogController } from 'fastify';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { LIMITS } from '../domain/limits.ts';
import { type ExecutorService, VERSION } from '../service/executor-service.ts';
import { MetricsHistory } from '../service/metrics-history.ts';
import { authHook } from './auth.ts';
import { errorHandler, frameworkErrorHandler } from './errors.ts';
import { registerJsonBodyParser } from './json-body.ts';
import { dashboardRoutes } from './routes/dashboard.ts';
import { poolRoutes } from './routes/pools.ts';
import { systemRoutes } from './routes/system.ts';
import { workerProtocolRoutes } from './routes/worker-protocol.ts';
import { workerAdminRoutes } from './routes/workers.ts';
import { workloadRoutes } from './routes/workloads.ts';
import { rejectUnsafeText } from './safe-text.ts';
import { httpsOptions, requireWorkerCertificate, type TlsSettings, tlsEnabled } from './tls.ts';
import { sessionRoutes } from './ui-session.ts';
import { type UiOptions, uiRoutes } from './ui-static.ts';

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
export async function buildApi(
  service: ExecutorService,
  logger: Logger,
  options: { ui?: UiOptions; tls?: TlsSettings } = {},
) {
  const https = options.tls && tlsEnabled(options.tls) ? httpsOptions(options.tls) : null;
  const app = Fastify({
    ...(https ? { https } : {}),
    loggerInstance: logger,
    bodyLimit: LIMITS.bodyBytes,
    // Long-polls park for up to a minute; keep sockets open a little longer than that.
    keepAliveTimeout: 65_000,
    requestTimeout: LIMITS.maxWaitMs + 30_000,
    // Requests are logged at debug: at thousands per second, info-level request logs would cost more than
    // the requests. Authorization headers are never logged.
    logController: new LogController({ disableRequestLogging: true }),
    schemaController: { compilersFactory },
    frameworkErrors: frameworkErrorHandler,
    // Path parameters carry workload keys (up to LIMITS.keyLength characters) and worker names; the router's
    // default (100 characters, before decoding) answered 414 for keys the API itself accepts. Percent-encoded,
    // a character takes up to 6 bytes of the path per UTF-16 unit; past that the router still answers 414.
    routerOptions: { maxParamLength: 6 * LIMITS.keyLength },
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.decorateRequest('principal', null);
  // Input checks every route shares, before any route's schema: bodies are UTF-8 JSON of bounded depth,
  // and no string anywhere in a request holds NUL or a lone surrogate.
  registerJsonBodyParser(app);
  // The certificate first: a worker-protocol call without one is refused before its token is looked at.
  if (https && options.tls?.clientCaFile) app.addHook('onRequest', requireWorkerCertificate);
  app.addHook('onRequest', authHook(service));
  app.addHook('preValidation', rejectUnsafeText);
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
          'Submit and watch workloads; the pull-worker protocol; operations. Bearer tokens on every endpoint but ' +
          'health. Bodies are application/json in UTF-8, nested at most ' +
          `${LIMITS.jsonDepth} levels, at most ${LIMITS.bodyBytes} bytes; no string (body, path or query) may ` +
          'contain NUL or a lone surrogate. Every rejection is a 4xx naming the field and the rule.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
    // Shared schemas (Workload, Worker, Error...) as components, referenced from each route.
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(systemRoutes(service, () => app.swagger()));
  await app.register(workloadRoutes(service));
  await app.register(workerAdminRoutes(service));
  await app.register(poolRoutes(service));
  await app.register(workerProtocolRoutes(service));
  // The dashboard: its static files at /ui, its login, and the few reads it needs beyond the API's own.
  const history = new MetricsHistory(service.metrics);
  history.start();
  app.addHook('onClose', async () => history.stop());
  await app.register(dashboardRoutes(service, history));
  await app.register(sessionRoutes());
  await app.register(uiRoutes({ frameAncestors: service.config.uiFrameAncestors, ...options.ui }));
  return app;
}

export type Api = Awaited<ReturnType<typeof buildApi>>;
