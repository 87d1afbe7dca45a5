import { EventEmitter } from 'node:events';
import type { Allocation, Evaluation, EventFrame, NomadJob } from '../../../executor/src/backends/nomad/nomad-types.ts';

/**
 * THE NOMAD FAKE's state (integration/src/nomad-fake/index.ts): jobs, evaluations, allocations and variables
 * with Nomad's Raft-style indexes. Every write takes the next index, stamps the object's ModifyIndex, bumps
 * its table's index (what `X-Nomad-Index` and blocking queries report) and appends an event frame to a
 * bounded buffer, as Nomad's event broker does.
 */
export type Table = 'jobs' | 'evals' | 'allocs' | 'vars';

export interface Variable {
  Namespace: string;
  Path: string;
  Items: Record<string, string>;
  CreateIndex: number;
  ModifyIndex: number;
  CreateTime: number;
  ModifyTime: number;
}

export type EventTopic = 'Job' | 'Evaluation' | 'Allocation';

export class FakeStore extends EventEmitter {
  index = 100;
  readonly tables: Record<Table, number> = { jobs: 1, evals: 1, allocs: 1, vars: 1 };
  readonly jobs = new Map<string, NomadJob>();
  readonly evals = new Map<string, Evaluation>();
  readonly allocs = new Map<string, Allocation>();
  readonly vars = new Map<string, Variable>();
  /** Every job spec ever registered, as stored (the suite checks no secret reached one). */
  readonly specs: string[] = [];
  readonly frames: Array<Required<EventFrame>> = [];
  private readonly bufferSize: number;

  constructor(bufferSize = 10_000) {
    super();
    this.setMaxListeners(0);
    this.bufferSize = bufferSize;
  }

  /** Takes the next index for one write touching `table`. */
  next(table: Table): number {
    this.index += 1;
    this.tables[table] = this.index;
    return this.index;
  }

  publish(index: number, topic: EventTopic, type: string, key: string, namespace: string, payload: object): void {
    const payloadKey = topic === 'Job' ? 'Job' : topic;
    const frame: Required<EventFrame> = {
      Index: index,
      Events: [
        {
          Topic: topic,
          Type: type,
          Key: key,
          Namespace: namespace,
          FilterKeys: 'JobID' in payload ? [String((payload as { JobID: string }).JobID)] : null,
          Index: index,
          Payload: { [payloadKey]: structuredClone(payload) },
        },
      ],
    };
    this.frames.push(frame);
    if (this.frames.length > this.bufferSize) this.frames.splice(0, this.frames.length - this.bufferSize);
    this.emit('frame', frame);
    this.emit('change');
  }

  putAlloc(alloc: Allocation, type = 'AllocationUpdated'): void {
    const index = this.next('allocs');
    alloc.ModifyIndex = index;
    alloc.ModifyTime = Date.now() * 1e6;
    alloc.CreateIndex ??= index;
    this.allocs.set(alloc.ID, alloc);
    this.publish(index, 'Allocation', type, alloc.ID, alloc.Namespace ?? 'default', alloc);
  }

  putEval(evaluation: Evaluation, type = 'EvaluationUpdated'): void {
    const index = this.next('evals');
    evaluation.ModifyIndex = index;
    evaluation.CreateIndex ??= index;
    this.evals.set(evaluation.ID, evaluation);
    this.publish(index, 'Evaluation', type, evaluation.ID, evaluation.Namespace ?? 'default', evaluation);
  }

  putJob(key: string, job: NomadJob, type: string): void {
    const index = this.next('jobs');
    job.ModifyIndex = index;
    job.CreateIndex ??= index;
    this.jobs.set(key, job);
    this.publish(index, 'Job', type, job.ID!, job.Namespace ?? 'default', job);
  }

  /** Resolves once `table`'s index exceeds `index` or `waitMs` passed (a blocking query). */
  async waitFor(table: Table, index: number, waitMs: number): Promise<void> {
    if (this.tables[table] > index) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, waitMs);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.off('change', check);
        resolve();
      }
      function check() {
        if (self.tables[table] > index) done();
      }
      this.on('change', check);
    });
  }
}
