import { z } from 'zod';
import { LIMITS } from './limits.ts';

/**
 * Whole numbers in a range, with a message naming the field and the range. Every numeric input is bounded
 * here so none reaches the store outside its column's type (`int` is 32-bit; `bigint` offsets and sequence
 * numbers stay within what a JavaScript number holds exactly).
 */
export function wholeNumber(what: string, min: number, max: number) {
  const rule = `${what} must be a whole number from ${min} to ${max}`;
  return z.number(rule).int(rule).min(min, rule).max(max, rule);
}

/** The same for a query-string parameter, which arrives as text. */
export function wholeNumberParam(what: string, min: number, max: number) {
  const rule = `${what} must be a whole number from ${min} to ${max}`;
  return z.coerce.number(rule).int(rule).min(min, rule).max(max, rule);
}

/** Attempt numbers: an `int` column, counted from 1. */
export const attemptNumber = wholeNumber('attempt', 1, LIMITS.int32);

/** Byte offsets into a log stream and change-feed sequence numbers: `bigint` columns. */
export const MAX_OFFSET = Number.MAX_SAFE_INTEGER;
