import type { FastifyRequest } from 'fastify';
import { InvalidInputError } from '../errors.ts';

/** One rejected part of a request, named the way validation errors name fields (`body.env.HOME`). */
export interface FieldProblem {
  field: string;
  rule: string;
}

const NUL_RULE = 'must not contain NUL (U+0000): PostgreSQL text and jsonb cannot hold it';
const SURROGATE_RULE =
  'must not contain a lone surrogate (U+D800 to U+DFFF): it is not Unicode text and has no UTF-8 encoding';

// With the `u` flag a well-formed surrogate pair is one code point (not in Cs): only lone halves match.
const LONE_SURROGATE = /\p{Cs}/u;

/** Why `text` cannot be taken as text, or null when it can. */
export function unsafeTextRule(text: string): string | null {
  if (text.includes('\u0000')) return NUL_RULE;
  // A lone surrogate would be stored as U+FFFD (the pg driver encodes with replacement), so two different
  // keys could become one; jsonb refuses it outright.
  if (LONE_SURROGATE.test(text)) return SURROGATE_RULE;
  return null;
}

/** How a key with unsafe characters is shown in a field path: JSON-escaped (lone surrogates too), so the message is text. */
function shownKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key).slice(1, -1);
}

/** Most problems listed in one answer: enough to fix a request, bounded for a hostile one. */
const MAX_PROBLEMS = 20;

/**
 * Every string of a parsed request part, at any depth, object keys included. The JSON body parser bounds
 * the depth (LIMITS.jsonDepth), so this recursion is bounded too.
 */
export function findUnsafeText(value: unknown, field: string, out: FieldProblem[] = []): FieldProblem[] {
  if (out.length >= MAX_PROBLEMS) return out;
  if (typeof value === 'string') {
    const rule = unsafeTextRule(value);
    if (rule) out.push({ field, rule });
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) findUnsafeText(value[i], `${field}.${i}`, out);
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const rule = unsafeTextRule(key);
      if (rule && out.length < MAX_PROBLEMS) out.push({ field: `${field}.${shownKey(key)}`, rule: `key ${rule}` });
      findUnsafeText(item, `${field}.${shownKey(key)}`, out);
    }
  }
  return out;
}

/**
 * preValidation hook for every route: NUL and lone surrogates are refused in path parameters, the query
 * string and the body (execConfig values and keys, env, labels, comments...) before any schema or the store
 * sees them. One check for all routes, so a new route or field cannot forget it.
 */
export async function rejectUnsafeText(request: FastifyRequest): Promise<void> {
  const problems: FieldProblem[] = [];
  findUnsafeText(request.params, 'params', problems);
  findUnsafeText(request.query, 'querystring', problems);
  findUnsafeText(request.body, 'body', problems);
  if (problems.length > 0) {
    throw new InvalidInputError(problems.map((p) => `${p.field}: ${p.rule}`).join('; '), problems);
  }
}
