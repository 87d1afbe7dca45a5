import { readFileSync } from 'node:fs';
import { connectionProblem } from '../../backends/nomad/health-check.ts';
import { NomadApiError, NomadClient, NomadConnectionError } from '../../backends/nomad/nomad-client.ts';
import { type NomadConfig, nomadConfigFromEnv } from '../../backends/nomad/nomad-config.ts';
import type { Allocation } from '../../backends/nomad/nomad-types.ts';
import { ConfigError } from '../../errors.ts';
import type { Worker } from '../../store/workers.ts';
import type { DriverContext } from './context.ts';
import type { PoolDriver } from './driver.ts';
import type { NomadDriverConfig } from './driver-config.ts';

/**
 * The label a Nomad worker carries with its allocation's ID: the job's task sets
 * `AIRFLEET_WORKER_LABELS = "airfleet.pool=<pool>,nomad.alloc=${NOMAD_ALLOC_ID}"` (Nomad interpolates it).
 */
export const NOMAD_ALLOC_LABEL = 'nomad.alloc';

export class NomadDriverError extends Error {
  override name = 'NomadDriverError';
}

/** The pool's driver fields that stand for the Nomad backend's variables (docs/nomad-backend.md). */
const OVERRIDES = {
  address: 'NOMAD_ADDR',
  namespace: 'NOMAD_NAMESPACE',
  region: 'NOMAD_REGION',
  caCertFile: 'NOMAD_CACERT',
  clientCertFile: 'NOMAD_CLIENT_CERT',
  clientKeyFile: 'NOMAD_CLIENT_KEY',
  tlsServerName: 'NOMAD_TLS_SERVER_NAME',
} as const;

/**
 * The connection of a pool's driver: the Nomad backend's settings (nomad-config.ts, from NOMAD_* variables,
 * TLS files read and checked there), each driver field given overriding its variable, and the token from
 * `tokenFile` when given. Errors name the driver field when the value came from one.
 */
export function nomadDriverConnection(
  config: NomadDriverConfig,
  pool: string,
  env: NodeJS.ProcessEnv = process.env,
): NomadConfig {
  const merged: NodeJS.ProcessEnv = { ...env };
  const named = new Map<string, string>();
  for (const [field, variable] of Object.entries(OVERRIDES)) {
    const value = config[field as keyof typeof OVERRIDES];
    if (value === undefined) continue;
    merged[variable] = value;
    named.set(variable, `driver.${field}`);
  }
  if (config.skipVerify !== undefined) {
    merged.NOMAD_SKIP_VERIFY = String(config.skipVerify);
    named.set('NOMAD_SKIP_VERIFY', `driver.skipVerify`);
  }
  if (config.tokenFile) {
    let token: string;
    try {
      token = readFileSync(config.tokenFile, 'utf8').trim();
    } catch (error) {
      throw new ConfigError(
        `pool '${pool}': driver.tokenFile=${config.tokenFile}: cannot read the file (${(error as NodeJS.ErrnoException).code ?? error})`,
      );
    }
    if (!token) throw new ConfigError(`pool '${pool}': driver.tokenFile=${config.tokenFile}: the file is empty`);
    merged.NOMAD_TOKEN = token;
  }
  try {
    return nomadConfigFromEnv(merged);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    let message = error.message.replace('invalid nomad backend configuration', `pool '${pool}' (driver nomad)`);
    for (const [variable, field] of named) message = message.replaceAll(variable, field);
    throw new ConfigError(message);
  }
}

/** The index of an allocation's name, `<job>.<group>[<index>]`; null if the name has none. */
export function allocIndex(name: string | undefined): number | null {
  const m = /\[(\d+)\]$/.exec(name ?? '');
  return m ? Number(m[1]) : null;
}

/** Allocations the scheduler counts toward the group's count: desired to run and not yet ended. */
export function liveAllocations(allocs: readonly Allocation[], group: string): Allocation[] {
  return allocs
    .filter(
      (a) =>
        a.TaskGroup === group &&
        a.DesiredStatus === 'run' &&
        (a.ClientStatus === 'pending' || a.ClientStatus === 'running'),
    )
    .sort((a, b) => (allocIndex(b.Name) ?? -1) - (allocIndex(a.Name) ?? -1));
}

/**
 * Which idle candidates can be removed, in order: those whose allocations are the highest-indexed live ones,
 * walking down from the top and stopping at the first allocation without an idle candidate (busy, or its
 * worker not registered yet). Removing any other would make Nomad stop a worker that is not drained.
 */
export function removableFromTop(live: readonly Allocation[], candidates: readonly Worker[]): Worker[] {
  const byAlloc = new Map(candidates.map((w) => [w.labels[NOMAD_ALLOC_LABEL] ?? '', w]));
  const out: Worker[] = [];
  for (const alloc of live) {
    const w = byAlloc.get(alloc.ID);
    if (!w) break;
    out.push(w);
  }
  return out;
}

/**
 * Why lowering the count by `chosen.length` would not stop exactly the `chosen` allocations, or null when
 * it would: they must be the highest-indexed live allocations of the group, one index each.
 */
export function removalProblem(live: readonly Allocation[], chosen: readonly string[]): string | null {
  const top = new Set(live.slice(0, chosen.length).map((a) => a.ID));
  const missing = chosen.filter((id) => !live.some((a) => a.ID === id));
  if (missing.length > 0) return `allocations ${missing.join(', ')} are not live allocations of the group`;
  const indexes = live.map((a) => allocIndex(a.Name));
  if (indexes.some((i) => i === null) || new Set(indexes).size !== indexes.length) {
    return `the group's live allocations do not each hold an index of their own (${live.map((a) => a.Name).join(', ')})`;
  }
  const outside = chosen.filter((id) => !top.has(id));
  if (outside.length > 0) {
    const names = (ids: Iterable<string>) => [...ids].map((id) => live.find((a) => a.ID === id)?.Name ?? id).join(', ');
    return `Nomad stops the highest-indexed allocations (${names(top)}) on a lower count, not ${names(outside)}`;
  }
  return null;
}

/**
 * The count that makes Nomad stop exactly the `removing` highest-indexed of `live` allocations, or why there
 * is none now. Placements Nomad could not make yet count in `desired` but stop nothing when the count goes
 * down, so the new count is taken from the live allocations. A count already below them means Nomad is
 * about to stop some of its own choosing (the count was lowered elsewhere): lowering it further would stop
 * more than the chosen.
 */
export function scaleInCount(desired: number, live: number, removing: number): number | string {
  if (desired < live) {
    return `the group's count (${desired}) is below its ${live} live allocations: Nomad is stopping allocations of its own choosing; the next pass tries again`;
  }
  return Math.max(0, live - removing);
}

interface ScaleStatus {
  JobID?: string;
  JobStopped?: boolean;
  TaskGroups?: Record<string, { Desired?: number; Running?: number; Placed?: number; Healthy?: number }>;
}

const TERMINAL = new Set(['complete', 'failed', 'lost']);

/**
 * A pool as the task group of a Nomad service job whose allocations are `airfleet worker` tasks, its count
 * set through `POST /v1/job/:id/scale`, over the Nomad backend's HTTP client (mutual TLS, ACL token).
 *
 * Nomad cannot be told which allocation to stop when a count goes down, and stopping one allocation
 * (`POST /v1/allocation/:id/stop`) makes the scheduler place a replacement, which takes the freed name index,
 * so lowering the count afterwards could stop a live worker. What Nomad's scheduler does on a lower count is
 * stop the allocations with the highest name indexes (`<job>.<group>[<index>]`). So this driver offers for
 * removal only idle workers whose allocations are the highest-indexed live ones (rankForRemoval), checks
 * again once they have drained that they still are, and only then lowers the count by as many: Nomad stops
 * exactly those, with the task's kill signal (the job sets `kill_signal = "SIGINT"`: the worker, holding
 * nothing, deregisters and exits). A worker is not released first: a service task that exits is restarted
 * by Nomad in place. Workers know their allocation by the `nomad.alloc` label.
 */
export class NomadDriver implements PoolDriver {
  readonly kind = 'nomad';
  private readonly config: NomadDriverConfig;
  private readonly ctx: DriverContext;
  private readonly pool: string;
  private readonly connection: NomadConfig;
  private readonly client: NomadClient;

  constructor(config: NomadDriverConfig, ctx: DriverContext, pool: string, env: NodeJS.ProcessEnv = process.env) {
    this.config = config;
    this.ctx = ctx;
    this.pool = pool;
    this.connection = nomadDriverConnection(config, pool, env);
    this.client = new NomadClient(this.connection);
  }

  private get jobPath(): string {
    return `/v1/job/${encodeURIComponent(this.config.job)}`;
  }

  /** One request, its failure turned into what to fix (address, TLS, token, job, group). */
  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    try {
      return (await this.client.request<T>(method, path, { body, timeoutMs: 30_000 })).data;
    } catch (error) {
      throw this.explain(error);
    }
  }

  private explain(error: unknown): Error {
    const where = `pool '${this.pool}', Nomad job '${this.config.job}' in namespace '${this.connection.namespace}'`;
    if (error instanceof NomadConnectionError) {
      return new NomadDriverError(
        `${where}: ${connectionProblem(error, this.connection)} (the pool's driver fields address, caCertFile, clientCertFile, clientKeyFile and tlsServerName override those variables)`,
      );
    }
    if (error instanceof NomadApiError) {
      if (error.status === 403) {
        return new NomadDriverError(
          `${where}: Nomad refused the token (403 Permission denied): give the driver (tokenFile or NOMAD_TOKEN) an ACL token with read-job and scale-job on namespace '${this.connection.namespace}'`,
        );
      }
      if (error.status === 404 && /job .*not found|job not found/i.test(error.message)) {
        return new NomadDriverError(
          `${where}: the job does not exist: register the worker job (nomad job run) or fix the driver's job and namespace`,
        );
      }
      if (/HTTP request to an HTTPS server/i.test(error.message)) {
        return new NomadDriverError(`${where}: ${connectionProblem(error, this.connection)}`);
      }
      return new NomadDriverError(`${where}: ${error.message}`);
    }
    return error as Error;
  }

  private async status(): Promise<{ desired: number; running: number }> {
    const status = await this.call<ScaleStatus>('GET', `${this.jobPath}/scale`);
    if (status.JobStopped) {
      throw new NomadDriverError(
        `pool '${this.pool}': Nomad job '${this.config.job}' is stopped: run it again (nomad job run) or the pool has no workers`,
      );
    }
    const group = status.TaskGroups?.[this.config.group];
    if (!group) {
      throw new NomadDriverError(
        `pool '${this.pool}': Nomad job '${this.config.job}' has no task group '${this.config.group}' (it has ${Object.keys(status.TaskGroups ?? {}).join(', ') || 'none'}): fix the driver's group`,
      );
    }
    return { desired: group.Desired ?? 0, running: group.Running ?? 0 };
  }

  private async allocations(index?: number): Promise<{ allocs: Allocation[]; index: number | null }> {
    try {
      const answer = await this.client.request<Allocation[]>('GET', `${this.jobPath}/allocations`, {
        query: index ? { index, wait: '5s' } : {},
        timeoutMs: 30_000,
      });
      return { allocs: answer.data ?? [], index: answer.index };
    } catch (error) {
      throw this.explain(error);
    }
  }

  private async setCount(count: number, message: string): Promise<void> {
    await this.call('POST', `${this.jobPath}/scale`, {
      Count: count,
      Target: { Group: this.config.group },
      Message: message,
      PolicyOverride: false,
    });
  }

  async observe(): Promise<{ target: number; running: number }> {
    const s = await this.status();
    return { target: s.desired, running: s.running };
  }

  async scaleTo(n: number): Promise<void> {
    const { desired } = await this.status();
    if (desired === n) return;
    await this.setCount(n, `airfleet autoscaler: pool ${this.pool} scales out to ${n} (was ${desired})`);
  }

  async rankForRemoval(workers: readonly Worker[]): Promise<Worker[]> {
    const { allocs } = await this.allocations();
    return removableFromTop(liveAllocations(allocs, this.config.group), workers);
  }

  async remove(workers: readonly Worker[]): Promise<void> {
    const ids = workers.map((w) => {
      const id = w.labels[NOMAD_ALLOC_LABEL];
      if (!id) {
        throw new NomadDriverError(
          `worker ${w.name} has no ${NOMAD_ALLOC_LABEL} label: it is not an allocation of Nomad job '${this.config.job}' (set AIRFLEET_WORKER_LABELS="airfleet.pool=${this.pool},${NOMAD_ALLOC_LABEL}=\${NOMAD_ALLOC_ID}" in the task's env)`,
        );
      }
      return id;
    });
    const [{ desired }, { allocs }] = await Promise.all([this.status(), this.allocations()]);
    const live = liveAllocations(allocs, this.config.group);
    const problem = removalProblem(live, ids);
    if (problem) {
      throw new NomadDriverError(
        `pool '${this.pool}': cannot remove workers ${workers.map((w) => w.name).join(', ')} exactly: ${problem}; count unchanged`,
      );
    }
    const count = scaleInCount(desired, live.length, ids.length);
    if (typeof count === 'string') {
      throw new NomadDriverError(`pool '${this.pool}': not removing workers now: ${count}; count unchanged`);
    }
    await this.setCount(
      count,
      `airfleet autoscaler: pool ${this.pool} scales in to ${count}, removing drained workers ${workers.map((w) => w.name).join(', ')}`,
    );
    const deadline = Date.now() + this.config.stopTimeoutSeconds * 1000;
    const others = new Set(live.map((a) => a.ID).filter((id) => !ids.includes(id)));
    let logged = false;
    let index: number | undefined;
    for (;;) {
      const answer = await this.allocations(index);
      index = answer.index ?? undefined;
      const byId = new Map(answer.allocs.map((a) => [a.ID, a]));
      // Nomad chose; a live worker stopped in place of the chosen ones is an error worth a page.
      const wrong = answer.allocs.filter((a) => others.has(a.ID) && a.DesiredStatus !== 'run');
      if (wrong.length > 0 && !logged) {
        logged = true;
        this.ctx.logger.error(
          { job: this.config.job, allocations: wrong.map((a) => a.Name) },
          'Nomad stopped allocations of live workers on scale-in instead of the drained ones',
        );
      }
      const up = ids.filter((id) => !TERMINAL.has(byId.get(id)?.ClientStatus ?? 'complete'));
      if (up.length === 0) return;
      if (Date.now() > deadline) {
        throw new NomadDriverError(
          `pool '${this.pool}': the allocations ${up.join(', ')} of removed workers are still running ${this.config.stopTimeoutSeconds} s after the count went to ${count} (stopTimeoutSeconds; does the task's kill_timeout exceed it?)`,
        );
      }
    }
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
