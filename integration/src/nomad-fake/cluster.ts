import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import type {
  Allocation,
  AllocationMetric,
  Evaluation,
  NomadJob,
  NomadTaskGroup,
} from '../../../executor/src/backends/nomad/nomad-types.ts';
import type { FakeStore } from './store.ts';
import type { FakeNode, TaskRunner } from './task-runner.ts';

/** Nomad answers a register with `EnforceIndex` whose index does not match so (an RPC error, HTTP 500). */
export class FakeApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface ClusterFaults {
  /** No node has room: every placement fails with DimensionExhausted. */
  noCapacity: boolean;
}

/**
 * THE NOMAD FAKE's servers and scheduler: registering a job makes an evaluation; the evaluation places
 * each group's allocations on a node that passes the datacenter, node pool, host volume, device and
 * constraint checks and has the CPU and memory left, or completes with `FailedTGAllocs` and leaves a
 * `blocked` evaluation, tried again when capacity frees up. Batch jobs end `dead` when their allocations end.
 */
export class FakeCluster {
  private readonly store: FakeStore;
  private readonly runner: TaskRunner;
  readonly nodes: FakeNode[];
  readonly faults: ClusterFaults = { noCapacity: false };
  /** Namespaces besides `default`. */
  readonly namespaces: string[] = [];
  private readonly used = new Map<string, { cpu: number; mem: number }>();

  constructor(store: FakeStore, runner: TaskRunner, nodes: FakeNode[]) {
    this.store = store;
    this.runner = runner;
    this.nodes = nodes;
  }

  key(namespace: string, id: string): string {
    return `${namespace}/${id}`;
  }

  register(
    job: NomadJob,
    enforce: { enforceIndex: boolean; jobModifyIndex: number },
  ): { evalId: string; index: number } {
    const namespace = job.Namespace || 'default';
    job.Namespace = namespace;
    const key = this.key(namespace, job.ID!);
    const existing = this.store.jobs.get(key);
    if (enforce.enforceIndex) {
      const current = existing?.JobModifyIndex ?? 0;
      if (enforce.jobModifyIndex === 0 && existing) {
        throw new FakeApiError(500, `Enforcing job modify index 0: job already exists`);
      }
      if (enforce.jobModifyIndex !== 0 && current !== enforce.jobModifyIndex) {
        throw new FakeApiError(
          500,
          `Enforcing job modify index ${enforce.jobModifyIndex}: job exists with conflicting job modify index: ${current}`,
        );
      }
    }
    job.Type ||= 'service';
    job.Priority ??= 50;
    job.Status = 'pending';
    job.Stop = false;
    job.SubmitTime = Date.now() * 1e6;
    job.Version = existing ? Number(existing.Version ?? 0) + 1 : 0;
    job.CreateIndex = existing?.CreateIndex;
    this.store.putJob(key, job, 'JobRegistered');
    job.JobModifyIndex = job.ModifyIndex;
    this.store.specs.push(JSON.stringify(job));
    const evaluation = this.newEval(job, 'job-register');
    setImmediate(() => this.evaluate(evaluation.ID));
    return { evalId: evaluation.ID, index: job.ModifyIndex! };
  }

  private newEval(job: NomadJob, triggeredBy: string, status = 'pending'): Evaluation {
    const evaluation: Evaluation = {
      ID: randomUUID(),
      Namespace: job.Namespace,
      JobID: job.ID!,
      Type: job.Type,
      TriggeredBy: triggeredBy,
      Status: status,
      StatusDescription: '',
      FailedTGAllocs: null,
      QueuedAllocations: null,
    };
    this.store.putEval(evaluation, 'EvaluationUpdated');
    return evaluation;
  }

  private evaluate(evalId: string): void {
    const evaluation = this.store.evals.get(evalId);
    if (!evaluation || (evaluation.Status !== 'pending' && evaluation.Status !== 'blocked')) return;
    const job = this.store.jobs.get(this.key(evaluation.Namespace ?? 'default', evaluation.JobID));
    if (!job || job.Stop) {
      this.store.putEval({ ...evaluation, Status: evaluation.Status === 'blocked' ? 'canceled' : 'complete' });
      return;
    }
    const failed: Record<string, AllocationMetric> = {};
    const queued: Record<string, number> = {};
    for (const group of job.TaskGroups ?? []) {
      const live = [...this.store.allocs.values()].filter(
        (a) => a.JobID === job.ID && a.TaskGroup === group.Name && a.Namespace === job.Namespace,
      );
      // Batch allocations that ended count as done: a batch job never runs a group's allocation twice.
      const missing = (group.Count ?? 1) - live.filter((a) => a.DesiredStatus === 'run').length;
      queued[group.Name ?? ''] = 0;
      for (let i = 0; i < missing; i++) {
        const placed = this.place(job, group);
        if ('metric' in placed) {
          failed[group.Name ?? ''] = { ...placed.metric, CoalescedFailures: missing - i - 1 };
          queued[group.Name ?? ''] = missing - i;
          break;
        }
        this.startAlloc(job, group, placed.node, evaluation.ID, live.length + i);
      }
    }
    const anyFailed = Object.keys(failed).length > 0;
    if (evaluation.Status === 'blocked') {
      if (!anyFailed) this.store.putEval({ ...evaluation, Status: 'complete' });
      return;
    }
    const blocked = anyFailed ? this.newEval(job, 'queued-allocs', 'blocked') : null;
    this.store.putEval({
      ...evaluation,
      Status: 'complete',
      FailedTGAllocs: anyFailed ? failed : null,
      QueuedAllocations: queued,
      ...(blocked ? { BlockedEval: blocked.ID } : {}),
    });
  }

  /** Blocked evaluations are tried again when an allocation ends or a fault is lifted. */
  unblock(): void {
    for (const e of this.store.evals.values()) if (e.Status === 'blocked') this.evaluate(e.ID);
  }

  private place(job: NomadJob, group: NomadTaskGroup): { node: FakeNode } | { metric: AllocationMetric } {
    const metric: AllocationMetric = {
      NodesEvaluated: 0,
      NodesFiltered: 0,
      NodesInPool: 0,
      NodesAvailable: {},
      ClassFiltered: null,
      ConstraintFiltered: null,
      NodesExhausted: 0,
      ClassExhausted: null,
      DimensionExhausted: null,
      QuotaExhausted: null,
    };
    const filtered = (why: string) => {
      metric.NodesFiltered! += 1;
      metric.ConstraintFiltered = { ...metric.ConstraintFiltered, [why]: (metric.ConstraintFiltered?.[why] ?? 0) + 1 };
    };
    const exhausted = (dimension: string) => {
      metric.NodesExhausted! += 1;
      metric.DimensionExhausted = {
        ...metric.DimensionExhausted,
        [dimension]: (metric.DimensionExhausted?.[dimension] ?? 0) + 1,
      };
    };
    const dcs = job.Datacenters ?? ['*'];
    for (const node of this.nodes) {
      if (node.Status !== 'ready') continue;
      if (!dcs.some((dc) => dc === '*' || dc === node.Datacenter)) continue;
      if (job.NodePool && job.NodePool !== 'all' && job.NodePool !== node.NodePool) continue;
      metric.NodesInPool! += 1;
      metric.NodesEvaluated! += 1;
      metric.NodesAvailable![node.Datacenter] = (metric.NodesAvailable![node.Datacenter] ?? 0) + 1;
      const missingVolume = Object.values(group.Volumes ?? {}).find(
        (v) => v.Type === 'host' && !node.HostVolumes[v.Source ?? ''],
      );
      if (missingVolume) {
        filtered('missing compatible host volumes');
        continue;
      }
      const tasks = group.Tasks ?? [];
      if (tasks.some((t) => (t.Resources?.Devices ?? []).length > 0)) {
        filtered('missing devices');
        continue;
      }
      const constraints = [
        ...(job.Constraints ?? []),
        ...(group.Constraints ?? []),
        ...tasks.flatMap((t) => t.Constraints ?? []),
      ];
      const unmet = constraints.find((c) => !this.satisfies(node, c.LTarget ?? '', c.Operand ?? '=', c.RTarget ?? ''));
      if (unmet) {
        filtered(`${unmet.LTarget} ${unmet.Operand} ${unmet.RTarget}`);
        continue;
      }
      const cpu = tasks.reduce(
        (n, t) => n + (t.Resources?.Cores ? t.Resources.Cores * 1000 : (t.Resources?.CPU ?? 100)),
        0,
      );
      const mem = tasks.reduce((n, t) => n + (t.Resources?.MemoryMB ?? 300), 0);
      const used = this.used.get(node.ID) ?? { cpu: 0, mem: 0 };
      if (this.faults.noCapacity || used.cpu + cpu > node.CPU) {
        exhausted('cpu');
        continue;
      }
      if (used.mem + mem > node.MemoryMB) {
        exhausted('memory');
        continue;
      }
      this.used.set(node.ID, { cpu: used.cpu + cpu, mem: used.mem + mem });
      return { node };
    }
    return { metric };
  }

  private satisfies(node: FakeNode, left: string, operand: string, right: string): boolean {
    const attr = /^\$\{(?:attr|node|meta)\.([^}]+)\}$/.exec(left)?.[1];
    const value = attr === undefined ? left : attr === 'datacenter' ? node.Datacenter : node.Attributes[attr];
    switch (operand) {
      case '=':
      case '==':
      case 'is':
        return value === right;
      case '!=':
      case 'not':
        return value !== right;
      case 'regexp':
        return value !== undefined && new RegExp(right).test(value);
      case 'is_set':
        return value !== undefined;
      case 'is_not_set':
        return value === undefined;
      default:
        return true;
    }
  }

  private startAlloc(job: NomadJob, group: NomadTaskGroup, node: FakeNode, evalId: string, n: number): void {
    const task = (group.Tasks ?? [])[0]!;
    const taskName = task.Name ?? 'task';
    const alloc: Allocation = {
      ID: randomUUID(),
      EvalID: evalId,
      Name: `${job.ID}.${group.Name}[${n}]`,
      Namespace: job.Namespace,
      NodeID: node.ID,
      NodeName: node.Name,
      JobID: job.ID!,
      TaskGroup: group.Name,
      DesiredStatus: 'run',
      DesiredDescription: '',
      ClientStatus: 'pending',
      ClientDescription: 'No tasks have started',
      TaskStates: {
        [taskName]: {
          State: 'pending',
          Failed: false,
          Restarts: 0,
          StartedAt: null,
          FinishedAt: null,
          Events: [
            { Type: 'Received', Time: Date.now() * 1e6, DisplayMessage: 'Task received by client', Details: {} },
          ],
        },
      },
      CreateTime: Date.now() * 1e6,
    };
    this.store.putAlloc(alloc, 'PlanResult');
    if (job.Status === 'pending') this.setJobStatus(job, 'running');
    void this.runner
      .run(alloc, job, group, task, node)
      .catch((error: Error) => {
        alloc.ClientStatus = 'failed';
        alloc.ClientDescription = `fake client error: ${error.message}`;
        this.store.putAlloc(alloc);
      })
      .finally(() => this.allocEnded(alloc, node, task));
  }

  private allocEnded(alloc: Allocation, node: FakeNode, task: NonNullable<NomadTaskGroup['Tasks']>[number]): void {
    const used = this.used.get(node.ID);
    if (used) {
      used.cpu -= task.Resources?.Cores ? task.Resources.Cores * 1000 : (task.Resources?.CPU ?? 100);
      used.mem -= task.Resources?.MemoryMB ?? 300;
    }
    const job = this.store.jobs.get(this.key(alloc.Namespace ?? 'default', alloc.JobID));
    if (job && job.Type === 'batch') {
      const all = [...this.store.allocs.values()].filter((a) => a.JobID === job.ID && a.Namespace === job.Namespace);
      if (all.every((a) => !['pending', 'running'].includes(a.ClientStatus))) this.setJobStatus(job, 'dead');
    }
    setImmediate(() => this.unblock());
  }

  private setJobStatus(job: NomadJob, status: string): void {
    const key = this.key(job.Namespace ?? 'default', job.ID!);
    if (this.store.jobs.get(key) !== job) return;
    job.Status = status;
    this.store.putJob(key, job, 'JobRegistered');
  }

  /** `DELETE /v1/job/:id`: stop (allocations told to stop, tasks killed), and with `purge` forget it all. */
  deregister(namespace: string, id: string, purge: boolean): { evalId: string; index: number } | null {
    const key = this.key(namespace, id);
    const job = this.store.jobs.get(key);
    if (!job) return null;
    const allocs = [...this.store.allocs.values()].filter((a) => a.JobID === id && a.Namespace === namespace);
    for (const e of this.store.evals.values()) {
      if (e.JobID === id && e.Namespace === namespace && e.Status === 'blocked')
        this.store.putEval({ ...e, Status: 'canceled' });
    }
    if (!job.Stop) {
      job.Stop = true;
      job.Status = 'dead';
      this.store.putJob(key, job, 'JobDeregistered');
      for (const a of allocs) {
        if (a.DesiredStatus !== 'run') continue;
        a.DesiredStatus = 'stop';
        a.DesiredDescription = 'alloc not needed due to job update';
        this.store.putAlloc(a);
        if (a.ClientStatus === 'pending' || a.ClientStatus === 'running') void this.runner.kill(a, 'job stopped');
      }
    }
    const evaluation = this.newEval(job, 'job-deregister', 'complete');
    if (purge) {
      for (const a of allocs) {
        this.store.allocs.delete(a.ID);
        rmSync(this.runner.allocDir(a.ID), { recursive: true, force: true });
      }
      for (const e of [...this.store.evals.values()])
        if (e.JobID === id && e.Namespace === namespace) this.store.evals.delete(e.ID);
      this.store.jobs.delete(key);
      const index = this.store.next('jobs');
      this.store.tables.allocs = index;
      this.store.tables.evals = index;
      this.store.publish(index, 'Job', 'JobDeregistered', id, namespace, { ...job, JobID: id });
    }
    return { evalId: evaluation.ID, index: this.store.index };
  }

  /** `POST /v1/job/:id/scale`: a group's count, and an evaluation that places or stops allocations. */
  scale(namespace: string, id: string, group: string, count: number): { evalId: string; index: number } | null {
    const key = this.key(namespace, id);
    const job = this.store.jobs.get(key);
    const tg = job?.TaskGroups?.find((g) => g.Name === group);
    if (!job || !tg) return null;
    tg.Count = count;
    this.store.putJob(key, job, 'JobRegistered');
    const running = [...this.store.allocs.values()].filter(
      (a) => a.JobID === id && a.TaskGroup === group && a.DesiredStatus === 'run',
    );
    for (const a of running.slice(count)) {
      a.DesiredStatus = 'stop';
      a.DesiredDescription = 'alloc not needed due to job update';
      this.store.putAlloc(a);
      void this.runner.kill(a, 'scaled down');
    }
    const evaluation = this.newEval(job, 'job-scaling');
    setImmediate(() => this.evaluate(evaluation.ID));
    return { evalId: evaluation.ID, index: this.store.index };
  }

  /** A node that stops heartbeating: its allocations are lost. */
  loseNode(nodeId: string): void {
    const node = this.nodes.find((n) => n.ID === nodeId);
    if (!node) return;
    node.Status = 'down';
    for (const a of this.store.allocs.values()) {
      if (a.NodeID !== nodeId || !['pending', 'running'].includes(a.ClientStatus)) continue;
      a.ClientStatus = 'lost';
      a.DesiredStatus = 'stop';
      a.DesiredDescription = 'alloc is lost since its node is down';
      a.ClientDescription = '';
      this.store.putAlloc(a);
      void this.runner.lose(a);
    }
  }
}
