/**
 * Typed errors. Each carries the HTTP status it maps to and a message that tells the caller what to do;
 * the API turns them into `{ error, message, details }` bodies.
 */
export class AirfleetError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  constructor(status: number, code: string, message: string, details?: unknown) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export class NotFoundError extends AirfleetError {
  constructor(what: string, id: string) {
    super(404, 'not_found', `${what} '${id}' does not exist`);
  }
}

export class ConflictError extends AirfleetError {
  constructor(message: string, details?: unknown) {
    super(409, 'conflict', message, details);
  }
}

export class InvalidInputError extends AirfleetError {
  constructor(message: string, details?: unknown) {
    super(400, 'invalid_input', message, details);
  }
}

export class UnauthorizedError extends AirfleetError {
  constructor(
    message = 'missing or invalid token: send "Authorization: Bearer <token>" (create one with `airfleet token create`)',
  ) {
    super(401, 'unauthorized', message);
  }
}

export class ForbiddenError extends AirfleetError {
  /** `needed`: the missing scope; or, with `details`, the whole message of a refusal for another reason. */
  constructor(needed: string, details?: unknown) {
    super(
      403,
      'forbidden',
      details
        ? needed
        : `this token lacks the '${needed}' scope; create one with \`airfleet token create --scopes ${needed}\``,
      details,
    );
  }
}

/**
 * A log chunk at an offset where the service already holds other bytes, or past the end of what it holds:
 * the writer resends from `storedLength`.
 */
export class LogOffsetError extends AirfleetError {
  readonly storedLength: number;
  constructor(message: string, storedLength: number) {
    super(409, 'log_offset', message, { storedLength });
    this.storedLength = storedLength;
  }
}

/** Bad configuration: raised once at start-up, naming every problem. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
