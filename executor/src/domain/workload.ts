import { z } from 'zod';
import { nomadExecConfig } from '../backends/nomad/exec-config.ts';
import { LIMITS } from './limits.ts';
import type { FailureReason, WorkloadState } from './states.ts';

/**
 * `pool`: pull workers; `local`: processes on the service's own host (embedded default, development);
 * `nomad` and `batch`: push backends of their own issue.
 */
export const BACKENDS = ['pool', 'local', 'nomad', 'batch'] as const;
export type BackendName = (typeof BACKENDS)[number];

const name = (what: string, max: number) =>
  z
    .string()
    .min(1, `${what} must not be empty`)
    .max(max, `${what} must be at most ${max} characters`)
    .regex(/^[A-Za-z0-9_.:@/-]+$/, `${what} may contain only letters, digits and _ . : @ / -`);

export const queueName = name('queue', LIMITS.queueLength);

const envName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment variable names must match [A-Za-z_][A-Za-z0-9_]*');

/** What a client submits. Every field is validated here, at the edge, before anything is stored. */
export const workloadInput = z
  .object({
    key: z
      .string()
      .min(1, 'key must not be empty')
      .max(LIMITS.keyLength, `key must be at most ${LIMITS.keyLength} characters`)
      .describe('Idempotency key: submitting the same key again returns the same workload.'),
    command: z
      .array(z.string().max(LIMITS.commandBytes))
      .min(1, 'command needs at least the program to run')
      .max(LIMITS.commandArgs, `command may have at most ${LIMITS.commandArgs} arguments`)
      .refine((argv) => argv.reduce((n, a) => n + a.length, 0) <= LIMITS.commandBytes, {
        message: `command may total at most ${LIMITS.commandBytes} characters`,
      })
      .describe('argv of the task; no shell is involved unless argv[0] is one.'),
    image: z.string().max(512).optional().describe('Container image; required by container runtimes and backends.'),
    env: z
      .record(envName, z.string().max(LIMITS.envValueBytes))
      .refine((env) => Object.keys(env).length <= LIMITS.envVars, {
        message: `env may have at most ${LIMITS.envVars} variables`,
      })
      .default({})
      .describe('Environment of the task. Values are shown to admin tokens only; put secrets in secretEnv.'),
    secretEnv: z
      .record(envName, z.string().max(LIMITS.envValueBytes))
      .refine((env) => Object.keys(env).length <= LIMITS.envVars, {
        message: `secretEnv may have at most ${LIMITS.envVars} variables`,
      })
      .default({})
      .describe(
        'Write-only environment (tokens, passwords): stored encrypted, given only to the task, never returned by any read.',
      ),
    queue: queueName.default('default'),
    backend: z.enum(BACKENDS).default('pool'),
    poolSlots: z
      .number()
      .int('poolSlots must be a whole number')
      .min(1, 'poolSlots must be at least 1')
      .max(LIMITS.maxPoolSlots)
      .default(1),
    priorityWeight: z.number().int('priorityWeight must be a whole number').min(-1_000_000).max(1_000_000).default(1),
    resources: z
      .object({
        cpu: z.number().positive().max(1_024).optional(),
        memoryMb: z.number().int().positive().max(4_194_304).optional(),
        gpus: z.number().int().min(0).max(64).optional(),
      })
      .strict()
      .default({}),
    execConfig: z.record(z.string(), z.unknown()).default({}),
    timeouts: z
      .object({
        pendingSeconds: z.number().int().positive().max(604_800).optional(),
        runSeconds: z.number().int().positive().max(2_592_000).optional(),
      })
      .strict()
      .default({}),
    maxInfraRetries: z.number().int().min(0).max(10).optional(),
  })
  .strict()
  .superRefine((w, ctx) => {
    // A Nomad override that cannot make a job is refused here, naming the field, not when it is submitted.
    if (w.execConfig.nomad === undefined) return;
    const parsed = nomadExecConfig.safeParse(w.execConfig.nomad);
    if (parsed.success) return;
    for (const issue of parsed.error.issues) {
      ctx.addIssue({ code: 'custom', path: ['execConfig', 'nomad', ...issue.path], message: issue.message });
    }
  });

export type WorkloadInput = z.input<typeof workloadInput>;
export type ValidWorkloadInput = z.output<typeof workloadInput>;

export interface Workload {
  id: string;
  key: string;
  command: string[];
  image: string | null;
  env: Record<string, string>;
  queue: string;
  backend: BackendName;
  poolSlots: number;
  priorityWeight: number;
  resources: { cpu?: number; memoryMb?: number; gpus?: number };
  execConfig: Record<string, unknown>;
  timeouts: { pendingSeconds?: number; runSeconds?: number };
  state: WorkloadState;
  attempt: number;
  infraRetries: number;
  maxInfraRetries: number;
  workerId: string | null;
  workerName: string | null;
  backendRef: string | null;
  reason: FailureReason | null;
  exitCode: number | null;
  message: string | null;
  cancelRequested: boolean;
  /** A stop the service asked for and waits to see confirmed (cancel, pending or run timeout). */
  stopReason: FailureReason | null;
  stopMessage: string | null;
  /** The service instance that owns a push attempt (submits, watches and stops it). */
  claimedBy: string | null;
  createdAt: string;
  queuedAt: string;
  leasedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
}
