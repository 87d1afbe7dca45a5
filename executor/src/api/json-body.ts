import type { FastifyInstance } from 'fastify';
import { LIMITS } from '../domain/limits.ts';
import { AirfleetError, InvalidInputError } from '../errors.ts';

/** A body in a character set other than UTF-8: the API reads JSON in UTF-8 only (RFC 8259, section 8.1). */
export class UnsupportedCharsetError extends AirfleetError {
  constructor(charset: string) {
    super(
      415,
      'unsupported_media_type',
      `body: charset '${charset}' is not supported; send application/json encoded as UTF-8 (charset=utf-8 or none)`,
      [{ field: 'body', rule: 'JSON encoded as UTF-8' }],
    );
  }
}

const OPEN_OBJECT = 0x7b; // {
const OPEN_ARRAY = 0x5b; // [
const CLOSE_OBJECT = 0x7d; // }
const CLOSE_ARRAY = 0x5d; // ]
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/**
 * The byte offset at which `bytes`, read as JSON, first nests deeper than `max` arrays/objects, or -1. A
 * linear scan that needs no parse: in UTF-8 every byte of a multi-byte character is >= 0x80, so brackets and
 * quotes are always themselves, and inside strings only a backslash changes the meaning of the next byte.
 */
export function depthExceededAt(bytes: Uint8Array, max: number): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (inString) {
      if (b === BACKSLASH) i++;
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) {
      inString = true;
    } else if (b === OPEN_OBJECT || b === OPEN_ARRAY) {
      if (++depth > max) return i;
    } else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
      depth--;
    }
  }
  return -1;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The charset parameter of a Content-Type header, lower-cased, if it has one. */
function charsetOf(contentType: string | undefined): string | null {
  const match = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType ?? '');
  return match?.[1]?.toLowerCase() ?? null;
}

/**
 * Replaces Fastify's body parsers with one for `application/json` that takes the raw bytes and refuses, each
 * with a 4xx naming `body`, what the default would let through or crash on:
 * - bytes that are not UTF-8 (the default decodes them to U+FFFD, so two different keys would collide);
 * - nesting deeper than LIMITS.jsonDepth, found before parsing (10,000 brackets overflow the stack of
 *   JSON.parse, zod and the jsonb encoder alike);
 * - `__proto__` and `constructor.prototype` keys (Fastify's own JSON parser is reused for that).
 * Other media types, text/plain included, are refused with 415: no route reads them, and none should take
 * bytes that skipped these checks.
 */
export function registerJsonBodyParser(
  app: Pick<FastifyInstance, 'getDefaultJsonParser' | 'removeAllContentTypeParsers' | 'addContentTypeParser'>,
): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    const charset = charsetOf(request.headers['content-type']);
    if (charset !== null && charset !== 'utf-8' && charset !== 'utf8') {
      done(new UnsupportedCharsetError(charset), undefined);
      return;
    }
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      done(
        new InvalidInputError('body: is not valid UTF-8; encode the JSON as UTF-8 (it is never rewritten to U+FFFD)', [
          { field: 'body', rule: 'must be valid UTF-8' },
        ]),
        undefined,
      );
      return;
    }
    const tooDeep = depthExceededAt(bytes, LIMITS.jsonDepth);
    if (tooDeep >= 0) {
      done(
        new InvalidInputError(
          `body: nests arrays and objects deeper than ${LIMITS.jsonDepth} levels (at byte ${tooDeep}); flatten it`,
          [{ field: 'body', rule: `nesting depth at most ${LIMITS.jsonDepth}` }],
        ),
        undefined,
      );
      return;
    }
    if (bytes.length === 0) {
      done(
        new InvalidInputError('body: is empty but Content-Type is application/json; send JSON, or no Content-Type', [
          { field: 'body', rule: 'must be JSON' },
        ]),
        undefined,
      );
      return;
    }
    parseJson(request, text, (error, value) => {
      if (error) done(jsonError(text), undefined);
      else done(null, value);
    });
  });
}

/** Why Fastify's parser refused `text` (it says only that it did): the syntax error, or a poisoned key. */
function jsonError(text: string): InvalidInputError {
  try {
    JSON.parse(text);
  } catch (error) {
    return new InvalidInputError(`body: is not valid JSON (${(error as Error).message})`, [
      { field: 'body', rule: 'must be JSON' },
    ]);
  }
  return new InvalidInputError('body: must not contain "__proto__" or "constructor": {"prototype": ...} keys', [
    { field: 'body', rule: 'no prototype keys' },
  ]);
}
