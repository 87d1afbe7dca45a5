import { z } from 'zod';
import type { LeasedWorkload } from '../backends/pool/worker-registry.ts';
import { FAILURE_REASONS, WORKLOAD_STATES } from '../domain/states.ts';
import { BACKENDS, type Workload } from '../domain/workload.ts';
import type { PoolSummary } from '../service/executor-service.ts';
import type { FeedEvent } from '../store/events.ts';
import { LOG_STREAMS } from '../store/logs.ts';
import { type ApiToken, SCOPES } from '../store/tokens.ts';
import { WORKER_STATES, type Worker } from '../store/workers.ts';
import type { QueueStats } from '../store/workloads.ts';

/**
 * Response schemas: what every route answers, for every status, in `/openapi.json`. Replies are encoded
 * through them (fastify-type-provider-zod), so a field missing from a schema is dropped rather than leaked,
 * and the fuzz stage (integration/test/api-fuzz.test.ts) checks every answer against them. Each schema is
 * tied to its TypeScript type below: a field added to `Workload` or `Worker` fails the type check here
 * until the schema has it too.
 */

const time = z.iso.datetime({ offset: true }).describe('ISO-8601 time');
const nullableTime = time.nullable();

/** `{ error, message, details? }`: the one error shape of every endpoint (see api/errors.ts). */
export const errorBody = z
  .object({
    error: z.string().describe('machine-readable code: invalid_input, unauthorized, forbidden, not_found, conflict...'),
    message: z.string().describe('what is wrong and how to fix it; validation errors name each field and rule'),
    details: z.unknown().optional(),
  })
  .meta({ id: 'Error' });

export const workloadView = z
  .object({
    id: z.uuid(),
    key: z.string(),
    command: z.array(z.string()),
    image: z.string().nullable(),
    env: z.record(z.string(), z.string()),
    queue: z.string(),
    backend: z.enum(BACKENDS),
    poolSlots: z.number().int(),
    priorityWeight: z.number().int(),
    resources: z.object({
      cpu: z.number().optional(),
      memoryMb: z.number().int().optional(),
      gpus: z.number().int().optional(),
    }),
    execConfig: z.record(z.string(), z.unknown()),
    timeouts: z.object({
      pendingSeconds: z.number().int().optional(),
      runSeconds: z.number().int().optional(),
    }),
    state: z.enum(WORKLOAD_STATES),
    attempt: z.number().int(),
    infraRetries: z.number().int(),
    maxInfraRetries: z.number().int(),
    workerId: z.uuid().nullable(),
    workerName: z.string().nullable(),
    backendRef: z.string().nullable(),
    reason: z.enum(FAILURE_REASONS).nullable(),
    exitCode: z.number().int().nullable(),
    message: z.string().nullable(),
    cancelRequested: z.boolean(),
    stopReason: z.enum(FAILURE_REASONS).nullable().describe('a stop the service asked for and waits to see confirmed'),
    stopMessage: z.string().nullable(),
    claimedBy: z.string().nullable().describe('the service instance that owns a push attempt'),
    createdAt: time,
    queuedAt: time,
    leasedAt: nullableTime,
    startedAt: nullableTime,
    finishedAt: nullableTime,
    updatedAt: time,
  })
  .meta({ id: 'Workload' });

const metricsView = z.object({
  cpuPercent: z.number().optional(),
  memoryUsedBytes: z.number().optional(),
  memoryTotalBytes: z.number().optional(),
  diskFreeBytes: z.number().optional(),
  diskTotalBytes: z.number().optional(),
  load1: z.number().optional(),
  load5: z.number().optional(),
  load15: z.number().optional(),
});

export const workerView = z
  .object({
    id: z.uuid(),
    name: z.string(),
    queues: z.array(z.string()),
    concurrency: z.number().int(),
    labels: z.record(z.string(), z.string()),
    state: z.enum(WORKER_STATES),
    maintenance: z.boolean(),
    maintenanceComment: z.string().nullable(),
    draining: z.boolean(),
    runtime: z.string().nullable(),
    version: z.string().nullable(),
    metrics: metricsView,
    registeredAt: time,
    lastHeartbeat: time,
    usedSlots: z.number().int(),
    runningWorkloads: z.number().int(),
  })
  .meta({ id: 'Worker' });

export const tokenView = z
  .object({
    id: z.string(),
    name: z.string(),
    scopes: z.array(z.enum(SCOPES)),
    queues: z.array(z.string()).nullable().describe('enrollment tokens: the queues its workers may serve; null: any'),
    createdAt: time,
    revokedAt: nullableTime,
  })
  .meta({ id: 'Token' });

export const feedEventView = z
  .object({
    seq: z.number().int(),
    workloadId: z.uuid(),
    key: z.string(),
    state: z.enum(WORKLOAD_STATES),
    attempt: z.number().int(),
    reason: z.enum(FAILURE_REASONS).nullable(),
    exitCode: z.number().int().nullable(),
    at: time,
  })
  .meta({ id: 'FeedEvent' });

export const queueView = z
  .object({
    queue: z.string(),
    backend: z.enum(BACKENDS),
    queued: z.number().int(),
    queuedSlots: z.number().int(),
    pending: z.number().int(),
    running: z.number().int(),
    runningSlots: z.number().int(),
    oldestQueuedSeconds: z.number().describe('seconds the oldest queued workload has waited'),
    workers: z.number().int().describe('workers serving the queue that are neither offline nor lost'),
  })
  .meta({ id: 'Queue' });

export const logSliceView = z.object({
  attempt: z.number().int(),
  stream: z.enum(LOG_STREAMS),
  offset: z.number().int(),
  nextOffset: z.number().int(),
  data: z.base64().describe('the bytes, base64'),
  complete: z.boolean().describe('the attempt has ended and every byte was read'),
  state: z.enum(WORKLOAD_STATES),
});

/** What a submit-only token learns of a workload (api/present.ts): enough to follow it, nothing it holds. */
export const workloadSummaryView = z
  .object({
    id: z.uuid(),
    key: z.string(),
    state: z.enum(WORKLOAD_STATES),
    attempt: z.number().int(),
    createdAt: time,
  })
  .meta({ id: 'WorkloadSummary' });

/** A workload as the caller may see it: whole (env values for admin only), or its summary. */
export const presentedWorkloadView = z.union([workloadView, workloadSummaryView]);

/** One workload by id or key: as presented, with why a queued one still waits. */
export const workloadDetailView = z.union([
  workloadView.extend({
    waiting: z.string().optional().describe('why a queued workload has not been leased yet'),
  }),
  workloadSummaryView,
]);

const stopOrderView = z.object({
  workloadId: z.uuid(),
  attempt: z.number().int(),
  reason: z.string(),
  message: z.string().nullable(),
});

const workerConfigView = z.object({
  queues: z.array(z.string()),
  concurrency: z.number().int(),
  maintenance: z.boolean(),
  maintenanceComment: z.string().nullable(),
  state: z.enum(WORKER_STATES),
  draining: z.boolean().describe('drain and leave: no new work; let running tasks finish, then deregister'),
});

/** What a worker's poll answers: new leases (with their secret env, for the task only), stops, its config. */
export const pollView = z
  .object({
    leases: z.array(
      workloadView
        .extend({ secretEnv: z.record(z.string(), z.string()).describe('for the task only; never shown elsewhere') })
        .meta({ id: 'Lease' }),
    ),
    stop: z.array(stopOrderView),
    config: workerConfigView,
  })
  .meta({ id: 'PollResult' });

/** What a heartbeat answers: attempts to stop and the worker's configuration. */
export const heartbeatView = z
  .object({ stop: z.array(stopOrderView), config: workerConfigView })
  .meta({ id: 'HeartbeatResult' });

/** An autoscaled pool: its configuration and what the leader's autoscaler last saw and decided. */
export const poolView = z
  .object({
    name: z.string(),
    queues: z.array(z.string()),
    driver: z.string().describe('what scales it: swarm, nomad, aws'),
    slotsPerWorker: z.number().int(),
    minWorkers: z.number().int(),
    maxWorkers: z.number().int(),
    scaleOutCooldownSeconds: z.number().int(),
    scaleInCooldownSeconds: z.number().int(),
    hysteresisSlots: z.number().int(),
    drainTimeoutSeconds: z.number().int(),
    desired: z.number().int().nullable().describe('workers the backlog asks for (status.desired)'),
    actual: z.number().int().nullable().describe('workers the platform runs (status.running)'),
    backlog: z.number().int().nullable().describe('slots queued plus running'),
    status: z
      .object({
        queuedSlots: z.number().int(),
        runningSlots: z.number().int(),
        desired: z.number().int().describe('ceil((queued + running slots) / slots per worker), within the bounds'),
        target: z.number().int().describe('the capacity the platform is asked to keep'),
        running: z.number().int().describe('workers the platform reports running'),
        workers: z.number().int().describe('workers of the pool registered and live'),
        scalingIn: z.array(z.string()).describe('workers chosen for scale-in: in maintenance until drained'),
        lastDecision: z.object({ at: time, action: z.string(), target: z.number().int(), reason: z.string() }),
        lastScaleOutAt: nullableTime,
        lastScaleInAt: nullableTime,
        error: z.string().nullable(),
        updatedAt: time,
      })
      .nullable()
      .describe('null until the leader has looked at the pool'),
    history: z
      .array(z.object({ at: time, desired: z.number().int(), actual: z.number().int() }))
      .describe('desired and actual workers over the last hour, oldest first (one sample per change or 30 s)'),
  })
  .meta({ id: 'Pool' });

/** 204 No Content. */
export const noContent = z.null().describe('No Content');

// ------------------------------------------------------------------ statuses

type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 414 | 415 | 503;
const ERROR_DESCRIPTIONS: Record<ErrorStatus, string> = {
  400: 'Invalid input: each field and rule is named',
  401: 'Missing, unknown or revoked token',
  403: 'The token lacks the scope this endpoint needs',
  404: 'No such workload, worker or token',
  409: 'Conflicts with the current state (stale attempt, offset, worker state...)',
  413: 'Body larger than the limit (named in the message, in bytes)',
  414: 'A path parameter longer than the router takes (the message names the limit)',
  415: 'Body not application/json in UTF-8',
  503: 'The database is unreachable; retry after Retry-After seconds',
};

/** Every authenticated route may answer these: bad input, auth, unparseable or oversized bodies, no database. */
const COMMON: ErrorStatus[] = [400, 401, 403, 413, 415, 503];

/**
 * A route's responses: its success schemas plus the error statuses it can give (the common ones and
 * `extra`), all with the error body.
 */
type ResponseSpec = z.ZodType | { description?: string; content: Record<string, { schema: z.ZodType }> };

export function replies<S extends Record<number, ResponseSpec>>(
  success: S,
  extra: ErrorStatus[] = [],
): S & Partial<Record<ErrorStatus, typeof errorBody>> {
  const errors = Object.fromEntries(
    [...COMMON, ...extra].map((status) => [status, errorBody.describe(ERROR_DESCRIPTIONS[status])]),
  );
  return { ...success, ...errors };
}

// ------------------------------------------------------------------ ties to the TypeScript types

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const tie = <_T extends true>() => undefined;
tie<Same<z.output<typeof workloadView>, Workload>>();
tie<Same<z.output<typeof workerView>, Worker>>();
tie<Same<z.output<typeof tokenView>, ApiToken>>();
tie<Same<z.output<typeof pollView>['leases'][number], LeasedWorkload>>();
tie<Same<Omit<z.output<typeof queueView>, 'workers'>, QueueStats>>();
tie<Same<z.output<typeof poolView>, PoolSummary>>();
tie<Same<Omit<z.output<typeof feedEventView>, 'state' | 'reason'>, Omit<FeedEvent, 'state' | 'reason'>>>();
