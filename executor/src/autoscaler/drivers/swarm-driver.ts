import type Docker from 'dockerode';
import type { Worker } from '../../store/workers.ts';
import type { DriverContext } from './context.ts';
import type { PoolDriver } from './driver.ts';
import type { SwarmDriverConfig } from './driver-config.ts';

/** The label a Swarm worker carries with its task id (AIRFLEET_WORKER_LABELS=swarm.task={{.Task.ID}}). */
export const SWARM_TASK_LABEL = 'swarm.task';

/** How long a released worker's container may take to exit after its drain, ms. */
const EXIT_TIMEOUT_MS = 60_000;

export class SwarmDriverError extends Error {
  override name = 'SwarmDriverError';
}

interface SwarmTask {
  ID: string;
  NodeID?: string;
  Slot?: number;
  DesiredState?: string;
  Status?: { State?: string };
}

/**
 * A pool as a replicated Docker Swarm service whose tasks are `airfleet worker` containers, scaled through the
 * Engine API (dockerode).
 *
 * Swarm cannot be told which task to remove when replicas go down; what it does (SwarmKit's replicated
 * orchestrator) is remove tasks on the nodes holding the most copies first and, among equals, tasks that are
 * not running before running ones. So a removal first releases the chosen workers (already drained): each
 * deregisters and exits 0, which under a restart condition of `on-failure` leaves its task complete and
 * not restarted. Only once every chosen task is down are the replicas lowered by as many, and Swarm takes the
 * stopped tasks. Candidates are ranked node by node the same way (most copies first) so the stopped tasks
 * are the ones Swarm picks. A service that restarts tasks that exit 0 is refused: a released worker would
 * come back and Swarm would then pick a live one.
 */
export class SwarmDriver implements PoolDriver {
  readonly kind = 'swarm';
  private dockerClient: Promise<Docker> | undefined;
  private readonly config: SwarmDriverConfig;
  private readonly ctx: DriverContext;

  constructor(config: SwarmDriverConfig, ctx: DriverContext) {
    this.config = config;
    this.ctx = ctx;
  }

  /** dockerode is loaded on first use: a service without a Swarm pool never carries it (and its gRPC stack). */
  private docker(): Promise<Docker> {
    this.dockerClient ??= import('dockerode').then(
      ({ default: Docker }) => new Docker(this.config.socketPath ? { socketPath: this.config.socketPath } : undefined),
    );
    return this.dockerClient;
  }

  private async inspect(): Promise<{ version: number; spec: Record<string, unknown>; replicas: number }> {
    let info: { Version?: { Index?: number }; Spec?: Record<string, unknown> };
    try {
      info = (await (await this.docker()).getService(this.config.service).inspect()) as typeof info;
    } catch (error) {
      throw new SwarmDriverError(
        `cannot inspect Docker service '${this.config.service}': ${(error as Error).message} ` +
          '(is this engine a Swarm manager, and does the service exist?)',
      );
    }
    const spec = info.Spec ?? {};
    const mode = spec.Mode as { Replicated?: { Replicas?: number } } | undefined;
    if (!mode?.Replicated) {
      throw new SwarmDriverError(`Docker service '${this.config.service}' is not replicated: give it mode replicated`);
    }
    const restart = (spec.TaskTemplate as { RestartPolicy?: { Condition?: string } } | undefined)?.RestartPolicy;
    if (!restart?.Condition || restart.Condition === 'any') {
      throw new SwarmDriverError(
        `Docker service '${this.config.service}' restarts tasks that exit 0 (restart condition ${restart?.Condition ?? 'any (default)'}): ` +
          'set it to on-failure (docker service update --restart-condition on-failure), or workers removed after draining come back',
      );
    }
    return { version: info.Version?.Index ?? 0, spec, replicas: mode.Replicated.Replicas ?? 0 };
  }

  private async tasks(): Promise<SwarmTask[]> {
    return (await (await this.docker()).listTasks({ filters: { service: [this.config.service] } })) as SwarmTask[];
  }

  async observe(): Promise<{ target: number; running: number }> {
    const [{ replicas }, tasks] = await Promise.all([this.inspect(), this.tasks()]);
    const running = tasks.filter((t) => t.DesiredState === 'running' && t.Status?.State === 'running').length;
    // A task that exited 0 is a worker that left after a drain (ours whose removal did not finish, or an
    // operator's): under on-failure it never comes back, so its slot is capacity in name only. Give it up;
    // Swarm takes stopped tasks first.
    const left = tasks.filter((t) => t.DesiredState === 'running' && t.Status?.State === 'complete').length;
    if (left > 0 && replicas > 0) {
      const target = await this.setReplicas((current) => Math.max(0, current - left));
      this.ctx.logger.info(
        { service: this.config.service, left, replicas: target },
        'gave up the slots of workers that left',
      );
      return { target, running };
    }
    return { target: replicas, running };
  }

  private async setReplicas(change: (current: number) => number): Promise<number> {
    // The update carries the version it read: a concurrent change makes it fail rather than overwrite.
    const { version, spec, replicas } = await this.inspect();
    const next = change(replicas);
    if (next === replicas) return replicas;
    await (await this.docker()).getService(this.config.service).update({
      version,
      ...spec,
      Mode: { Replicated: { Replicas: next } },
    });
    return next;
  }

  async scaleTo(n: number): Promise<void> {
    await this.setReplicas(() => n);
  }

  async rankForRemoval(workers: readonly Worker[]): Promise<Worker[]> {
    const tasks = new Map((await this.tasks()).map((t) => [t.ID, t]));
    const perNode = new Map<string, number>();
    for (const t of tasks.values()) {
      if (t.DesiredState === 'running' && t.NodeID) perNode.set(t.NodeID, (perNode.get(t.NodeID) ?? 0) + 1);
    }
    const node = (w: Worker) => tasks.get(w.labels[SWARM_TASK_LABEL] ?? '')?.NodeID ?? '';
    // Only workers whose task is known can be removed exactly; the most crowded node first, then the
    // highest slot (what Swarm would take first anyway).
    return workers
      .filter((w) => tasks.has(w.labels[SWARM_TASK_LABEL] ?? ''))
      .sort(
        (a, b) =>
          (perNode.get(node(b)) ?? 0) - (perNode.get(node(a)) ?? 0) ||
          (tasks.get(b.labels[SWARM_TASK_LABEL]!)?.Slot ?? 0) - (tasks.get(a.labels[SWARM_TASK_LABEL]!)?.Slot ?? 0),
      );
  }

  async remove(workers: readonly Worker[]): Promise<void> {
    const ids = workers.map((w) => {
      const id = w.labels[SWARM_TASK_LABEL];
      if (!id)
        throw new SwarmDriverError(
          `worker ${w.name} has no ${SWARM_TASK_LABEL} label: it is not a task of this service`,
        );
      return id;
    });
    for (const w of workers) await this.ctx.releaseWorker(w);
    const deadline = Date.now() + EXIT_TIMEOUT_MS;
    for (;;) {
      const byId = new Map((await this.tasks()).map((t) => [t.ID, t]));
      const up = ids.filter((id) => byId.get(id)?.Status?.State === 'running');
      if (up.length === 0) break;
      if (Date.now() > deadline) {
        throw new SwarmDriverError(
          `released workers' tasks ${up.join(', ')} of service '${this.config.service}' are still running after ${EXIT_TIMEOUT_MS} ms; replicas unchanged`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const before = new Set(
      (await this.tasks())
        .filter((t) => t.DesiredState === 'running' && t.Status?.State === 'running')
        .map((t) => t.ID),
    );
    await this.setReplicas((current) => Math.max(0, current - ids.length));
    // Swarm chose; check it chose the stopped tasks. A live one shut down instead is an error worth a page.
    const after = new Map((await this.tasks()).map((t) => [t.ID, t]));
    const wrong = [...before].filter((id) => after.get(id) && after.get(id)!.DesiredState !== 'running');
    if (wrong.length > 0) {
      this.ctx.logger.error(
        { service: this.config.service, tasks: wrong },
        'Swarm shut down running worker tasks on scale-in instead of the drained ones (tasks spread unevenly over nodes?)',
      );
    }
  }
}
