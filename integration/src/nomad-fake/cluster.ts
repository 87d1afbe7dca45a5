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

/** The body of `POST /v1/job/:id/scale` (Nomad's api.ScalingRequest). */
export interface ScaleRequest {
  Count?: number | null;
  Target?: { Group?: string; Job?: string; Namespace?: string };
  Message?: string;
  Error?: boolean;
  Meta?: Record<string, unknown> | null;
  PolicyOverride?: boolean;
}

/** One scaling event as `GET /v1/job/:id/scale` lists them (Nomad's structs.ScalingEvent). */
export interface ScalingEvent {
  Count: number | null;
  CreateIndex: number;
  Error: boolean;
  EvalID: string | null;
  Message: string;
  Meta: Record<string, unknown> | null;
  PreviousCount: number;
  Time: number;
}

/** The index in an allocation's name, `<job>.<group>[<index>]`. */
function nameIndex(name: string | undefined): number {
  const m = /\[(\d+)\]$/.exec(name ?? '');
  return m ? Number(m[1]) : -1;
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
  /** Scaling events by job key, then group. */
  private readonly events = new Map<string, Record<string, ScalingEvent[]>>();

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
      const kept = live.filter((a) => a.DesiredStatus === 'run');
      const missing = (group.Count ?? 1) - kept.length;
      // More allocations than the count (it was lowered): like Nomad's scheduler, stop those with the
      // highest name indexes, `<job>.<group>[<index>]`.
      if (missing < 0) {
        const byIndexDown = kept
          .filter((a) => a.ClientStatus === 'pending' || a.ClientStatus === 'running')
          .sort((a, b) => nameIndex(b.Name) - nameIndex(a.Name));
        for (const a of byIndexDown.slice(0, -missing)) this.stopAlloc(a, group, 'alloc not needed due to job update');
      }
      queued[group.Name ?? ''] = 0;
      // New allocations take the lowest indexes no allocation desired to run holds, as Nomad names them.
      const used = new Set(kept.map((a) => nameIndex(a.Name)));
      let next = 0;
      for (let i = 0; i < missing; i++) {
        const placed = this.place(job, group);
        if ('metric' in placed) {
          failed[group.Name ?? ''] = { ...placed.metric, CoalescedFailures: missing - i - 1 };
          queued[group.Name ?? ''] = missing - i;
          break;
        }
        while (used.has(next)) next++;
        used.add(next);
        this.startAlloc(job, group, placed.node, evaluation.ID, next);
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

  /**
   * `POST /v1/job/:id/scale` (a JobScaleRequest), checked and answered as Nomad's Job.Scale endpoint does:
   * the group's count, a scaling event, and an evaluation that places or stops allocations (the stopped
   * ones get the task's kill signal, and SIGKILL after its kill timeout). Without `Count` only the event.
   */
  scale(
    namespace: string,
    id: string,
    req: ScaleRequest,
  ): { evalId: string | null; evalIndex: number; index: number; jobModifyIndex: number } {
    const target = req.Target ?? {};
    if (target.Namespace && target.Namespace !== namespace) {
      throw new FakeApiError(400, 'namespace in payload did not match header');
    }
    if (target.Job && target.Job !== id) throw new FakeApiError(500, 'job ID in payload did not match URL');
    const groupName = target.Group ?? '';
    if (!groupName) throw new FakeApiError(400, 'missing task group name for scaling action');
    const count = req.Count ?? null;
    if (count !== null && count < 0) throw new FakeApiError(400, "scaling action count can't be negative");
    if (count !== null && req.Error) {
      throw new FakeApiError(400, 'scaling action should not contain count if error is true');
    }
    const key = this.key(namespace, id);
    const job = this.store.jobs.get(key);
    if (!job) throw new FakeApiError(404, `job "${id}" not found`);
    if (job.Type === 'system' && count !== null && count > 1) {
      throw new FakeApiError(400, 'jobs of type "system" can only be scaled to 1 or 0');
    }
    const tg = job.TaskGroups?.find((g) => g.Name === groupName);
    if (!tg) throw new FakeApiError(400, `task group "${groupName}" specified for scaling does not exist in job`);
    const previous = tg.Count ?? 1;
    const event: ScalingEvent = {
      Count: count,
      CreateIndex: 0,
      Error: Boolean(req.Error),
      EvalID: null,
      Message: req.Message ?? '',
      Meta: req.Meta ?? null,
      PreviousCount: previous,
      Time: Date.now() * 1e6,
    };
    let evalId: string | null = null;
    let evalIndex = 0;
    if (count !== null) {
      const policy = tg.Scaling as { Min?: number; Max?: number } | undefined;
      if (policy && count < (policy.Min ?? 0)) {
        throw new FakeApiError(400, `group count was less than scaling policy minimum: ${count} < ${policy.Min}`);
      }
      if (policy && policy.Max !== undefined && policy.Max < count) {
        throw new FakeApiError(400, `group count was greater than scaling policy maximum: ${count} > ${policy.Max}`);
      }
      tg.Count = count;
      job.SubmitTime = Date.now() * 1e6;
      job.Version = Number(job.Version ?? 0) + 1;
      this.store.putJob(key, job, 'JobRegistered');
      job.JobModifyIndex = job.ModifyIndex;
      const evaluation = this.newEval(job, 'job-scaling');
      evalId = evaluation.ID;
      evalIndex = evaluation.ModifyIndex ?? this.store.index;
      event.EvalID = evalId;
      setImmediate(() => this.evaluate(evaluation.ID));
    }
    event.CreateIndex = this.store.next('jobs');
    const events = this.events.get(key) ?? {};
    // Nomad keeps the latest 20 events per group, newest first.
    events[groupName] = [event, ...(events[groupName] ?? [])].slice(0, 20);
    this.events.set(key, events);
    this.store.emit('change');
    return { evalId, evalIndex, index: event.CreateIndex, jobModifyIndex: job.JobModifyIndex ?? job.ModifyIndex ?? 0 };
  }

  /** The group's scaling events, newest first (null when there are none, as Nomad answers). */
  scalingEvents(namespace: string, id: string, group: string): ScalingEvent[] | null {
    return this.events.get(this.key(namespace, id))?.[group] ?? null;
  }

  /** The scheduler stops an allocation: the client sends the task's kill signal, SIGKILL after its kill timeout. */
  private stopAlloc(a: Allocation, group: NomadTaskGroup, description: string): void {
    a.DesiredStatus = 'stop';
    a.DesiredDescription = description;
    this.store.putAlloc(a);
    const task = (group.Tasks ?? [])[0];
    const signal = typeof task?.KillSignal === 'string' && task.KillSignal ? task.KillSignal : 'SIGTERM';
    const timeoutNs = typeof task?.KillTimeout === 'number' ? task.KillTimeout : 5e9;
    void this.runner.kill(a, 'alloc not needed due to job update', { signal, timeoutMs: timeoutNs / 1e6 });
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
