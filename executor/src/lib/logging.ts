import pino, { type Logger } from 'pino';

/**
 * The service's and the worker's logger. Log lines never carry secrets: tokens and authorization headers are
 * redacted wherever they appear, request bodies and workload environments are not logged at all, and errors
 * are logged as type, message, code and stack only — a database error's bound parameters (the values of a
 * failed INSERT, env and secrets among them) and its detail are dropped.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    redact: {
      paths: [
        'req.headers.authorization',
        '*.authorization',
        'token',
        '*.token',
        '*.previousToken',
        '*.secretEnv',
        '*.env',
        'body',
        '*.body',
      ],
      censor: '[redacted]',
    },
    serializers: { err: safeError, error: safeError },
  };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * An error as a log line may show it. PostgreSQL quotes the offending value in some messages (`invalid input
 * syntax for type integer: "…"`): for database errors (those with a five-character SQLSTATE), quoted text is
 * replaced by its length.
 */
export function safeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) };
  const { code, status } = error as { code?: unknown; status?: unknown };
  const fromDatabase = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
  const message = fromDatabase
    ? error.message.replace(/"[^"]*"/g, (quoted) => `"<${quoted.length - 2} chars>"`)
    : error.message;
  return {
    type: error.name,
    message,
    ...(code !== undefined ? { code } : {}),
    ...(status !== undefined ? { status } : {}),
    stack: fromDatabase ? undefined : error.stack,
  };
}
