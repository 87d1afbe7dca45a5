import type { z } from 'zod';
import { type EnvironmentConfig, environmentSchema } from './schema.ts';

/** One problem in one environment file: which field, what it holds, what is allowed. */
export interface ConfigProblem {
  environment: string;
  /** Dotted path with indexes, e.g. `batch.jobQueues[0].priority`; `(root)` for the file itself. */
  field: string;
  message: string;
  /** The offending value, when there is one to show. */
  received?: unknown;
}

/**
 * Thrown before any construct exists when one or more environment files are invalid. The message lists
 * every problem of every environment, one per line, so a bad config is fixed in one pass.
 */
export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    const lines = problems.map((p) => `  - ${formatProblem(p)}`);
    const environments = [...new Set(problems.map((p) => p.environment))].join(', ');
    super(
      `Invalid environment configuration (${environments}): ${problems.length} problem${problems.length === 1 ? '' : 's'}\n` +
        `${lines.join('\n')}\n` +
        'Fix the fields above in stacks/src/config/environments/<environment>.ts (allowed values are documented in stacks/src/config/schema.ts).',
    );
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function formatProblem(problem: ConfigProblem): string {
  const shown = 'received' in problem && problem.received !== undefined ? ` (got ${preview(problem.received)})` : '';
  return `${problem.environment}: ${problem.field}${shown}: ${problem.message}`;
}

function preview(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

export function fieldPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)';
  return path
    .map((key, i) => (typeof key === 'number' ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`))
    .join('');
}

function toProblems(environment: string, error: z.ZodError): ConfigProblem[] {
  return error.issues.map((issue) => {
    const problem: ConfigProblem = { environment, field: fieldPath(issue.path), message: issue.message };
    // Scalars and arrays are worth echoing; an object is not (an unrecognized key already names itself),
    // except that a bad discriminator (`runtime`, `backend`) is reported on the object holding it.
    const input: unknown = 'input' in issue ? issue.input : undefined;
    const last = issue.path[issue.path.length - 1];
    if (input !== null && typeof input === 'object' && !Array.isArray(input)) {
      if (typeof last === 'string' && last in input) problem.received = (input as Record<string, unknown>)[last];
    } else if (input !== undefined) {
      problem.received = input;
    }
    return problem;
  });
}

/** Problems of one environment file, or none. */
export function checkEnvironment(label: string, input: unknown): ConfigProblem[] {
  const result = environmentSchema.safeParse(input, { reportInput: true });
  return result.success ? [] : toProblems(label, result.error);
}

/**
 * Validates every given environment and returns them with defaults applied, or throws one ConfigError
 * listing the problems of all of them. Labels come from the keys (the file names), so an environment
 * whose `name` itself is invalid is still reported under a readable label.
 */
export function parseEnvironments(inputs: Readonly<Record<string, unknown>>): EnvironmentConfig[] {
  const problems: ConfigProblem[] = [];
  const parsed: EnvironmentConfig[] = [];
  for (const [label, input] of Object.entries(inputs)) {
    const result = environmentSchema.safeParse(input, { reportInput: true });
    if (!result.success) {
      problems.push(...toProblems(label, result.error));
      continue;
    }
    if (result.data.name !== label) {
      problems.push({
        environment: label,
        field: 'name',
        received: result.data.name,
        message: `must equal the environment's key "${label}" so stack names and state keys stay predictable`,
      });
      continue;
    }
    parsed.push(result.data);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return parsed;
}
