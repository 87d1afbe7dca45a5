import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { LIMITS } from '../domain/limits.ts';
import { AirfleetError } from '../errors.ts';
import { DatabaseUnavailableError } from '../store/db.ts';

/**
 * One error shape for every endpoint: `{ error, message, details? }`. Validation failures name each field
 * and rule; an unreachable database is a 503 with Retry-After so clients back off and try again.
 */
export function errorHandler(error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): void {
  if (hasZodFastifySchemaValidationErrors(error)) {
    const where = error.validationContext ?? 'request';
    const details = error.validation.map((v) => ({
      field: [
        where,
        ...String(v.instancePath ?? '')
          .split('/')
          .filter(Boolean),
      ].join('.'),
      rule: v.message,
    }));
    reply.status(400).send({
      error: 'invalid_input',
      message: details.map((d) => `${d.field}: ${d.rule}`).join('; '),
      details,
    });
    return;
  }
  if (error instanceof AirfleetError) {
    reply.status(error.status).send({ error: error.code, message: error.message, details: error.details });
    return;
  }
  if (error instanceof DatabaseUnavailableError) {
    reply.header('retry-after', '1').status(503).send({ error: 'unavailable', message: error.message });
    return;
  }
  const status = (error as FastifyError).statusCode;
  if (status === 413) {
    reply.status(413).send({
      error: 'body_too_large',
      message: `body: larger than the limit of ${LIMITS.bodyBytes} bytes (${LIMITS.bodyBytes / 1024 / 1024} MiB); send less per request (batches of at most ${LIMITS.batchSize} workloads, log chunks of at most ${LIMITS.logChunkBytes} bytes)`,
      details: [{ field: 'body', rule: `at most ${LIMITS.bodyBytes} bytes` }],
    });
    return;
  }
  if ((error as FastifyError).code === 'FST_ERR_MAX_PARAM_LENGTH') {
    reply.status(414).send({
      error: 'uri_too_long',
      message: `path: a parameter is longer than ${6 * LIMITS.keyLength} characters (percent-encoded); keys are at most ${LIMITS.keyLength} characters`,
      details: [{ field: 'path', rule: `parameters at most ${6 * LIMITS.keyLength} characters` }],
    });
    return;
  }
  if (status === 415) {
    const type = request.headers['content-type'] ?? 'none';
    reply.status(415).send({
      error: 'unsupported_media_type',
      message: `body: Content-Type '${type}' is not supported; send application/json encoded as UTF-8`,
      details: [{ field: 'body', rule: 'Content-Type application/json' }],
    });
    return;
  }
  if (status && status >= 400 && status < 500) {
    reply.status(status).send({ error: (error as FastifyError).code ?? 'bad_request', message: error.message });
    return;
  }
  request.log.error({ err: error }, 'request failed');
  reply.status(500).send({ error: 'internal', message: 'internal error; the service log has the details' });
}

/**
 * Errors Fastify raises before any route is chosen (a path whose percent-encoding is not UTF-8, e.g.
 * `/v1/workloads/%ff`), in the same shape as every other error.
 */
export function frameworkErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  if (error.code === 'FST_ERR_BAD_URL') {
    reply.status(400).send({
      error: 'invalid_input',
      message: 'path: its percent-encoding is not UTF-8 text; encode each path segment as UTF-8 (encodeURIComponent)',
      details: [{ field: 'path', rule: 'percent-encoded UTF-8' }],
    });
    return;
  }
  errorHandler(error, request, reply);
}
