/**
 * The parts of Nomad's API objects (the `api` Go module's structs, as JSON) the backend reads and writes.
 * Field names are Nomad's own. Everything is optional because Nomad omits empty fields.
 */

export interface NomadConstraint {
  LTarget?: string;
  RTarget?: string;
  Operand?: string;
}

export interface NomadTask {
  Name?: string;
  Driver?: string;
  Config?: Record<string, unknown>;
  Env?: Record<string, string>;
  Resources?: {
    CPU?: number;
    Cores?: number;
    MemoryMB?: number;
    MemoryMaxMB?: number;
    Devices?: Array<{ Name: string; Count?: number; Constraints?: NomadConstraint[] }>;
  };
  Templates?: Array<{ EmbeddedTmpl?: string; DestPath?: string; Envvars?: boolean; ChangeMode?: string }>;
  VolumeMounts?: Array<{ Volume?: string; Destination?: string; ReadOnly?: boolean }>;
  Constraints?: NomadConstraint[];
  Meta?: Record<string, string>;
  LogConfig?: { MaxFiles?: number; MaxFileSizeMB?: number };
  [field: string]: unknown;
}

export interface NomadTaskGroup {
  Name?: string;
  Count?: number;
  Constraints?: NomadConstraint[];
  RestartPolicy?: { Attempts?: number; Mode?: string; Interval?: number; Delay?: number };
  ReschedulePolicy?: { Attempts?: number; Unlimited?: boolean; Interval?: number };
  EphemeralDisk?: { SizeMB?: number; Sticky?: boolean; Migrate?: boolean };
  Volumes?: Record<string, { Name?: string; Type?: string; Source?: string; ReadOnly?: boolean }>;
  Tasks?: NomadTask[];
  Meta?: Record<string, string>;
  [field: string]: unknown;
}

export interface NomadJob {
  ID?: string;
  Name?: string;
  Type?: string;
  Namespace?: string;
  Region?: string;
  Datacenters?: string[];
  NodePool?: string;
  Priority?: number;
  Meta?: Record<string, string>;
  Constraints?: NomadConstraint[];
  TaskGroups?: NomadTaskGroup[];
  Status?: string;
  Stop?: boolean;
  SubmitTime?: number;
  CreateIndex?: number;
  ModifyIndex?: number;
  JobModifyIndex?: number;
  [field: string]: unknown;
}

export interface TaskEvent {
  Type: string;
  Time?: number;
  Message?: string;
  DisplayMessage?: string;
  Details?: Record<string, string>;
  ExitCode?: number;
  Signal?: number;
  DriverError?: string;
  FailsTask?: boolean;
  KillReason?: string;
  SetupError?: string;
  ValidationError?: string;
}

export interface TaskState {
  State: 'pending' | 'running' | 'dead' | string;
  Failed?: boolean;
  Restarts?: number;
  StartedAt?: string | null;
  FinishedAt?: string | null;
  Events?: TaskEvent[] | null;
}

export interface Allocation {
  ID: string;
  EvalID?: string;
  Name?: string;
  Namespace?: string;
  NodeID?: string;
  NodeName?: string;
  JobID: string;
  TaskGroup?: string;
  DesiredStatus?: 'run' | 'stop' | 'evict' | string;
  DesiredDescription?: string;
  ClientStatus: 'pending' | 'running' | 'complete' | 'failed' | 'lost' | 'unknown' | string;
  ClientDescription?: string;
  TaskStates?: Record<string, TaskState> | null;
  CreateIndex?: number;
  ModifyIndex?: number;
  CreateTime?: number;
  ModifyTime?: number;
}

export interface AllocationMetric {
  NodesEvaluated?: number;
  NodesFiltered?: number;
  NodesInPool?: number;
  NodesAvailable?: Record<string, number>;
  ClassFiltered?: Record<string, number> | null;
  ConstraintFiltered?: Record<string, number> | null;
  NodesExhausted?: number;
  ClassExhausted?: Record<string, number> | null;
  DimensionExhausted?: Record<string, number> | null;
  QuotaExhausted?: string[] | null;
  CoalescedFailures?: number;
}

export interface Evaluation {
  ID: string;
  Namespace?: string;
  JobID: string;
  Status: 'pending' | 'complete' | 'failed' | 'blocked' | 'canceled' | string;
  StatusDescription?: string;
  TriggeredBy?: string;
  Type?: string;
  FailedTGAllocs?: Record<string, AllocationMetric> | null;
  BlockedEval?: string;
  QueuedAllocations?: Record<string, number> | null;
  CreateIndex?: number;
  ModifyIndex?: number;
}

/** One line of `/v1/event/stream` (a heartbeat is `{}`). */
export interface EventFrame {
  Index?: number;
  Events?: Array<{
    Topic: 'Allocation' | 'Evaluation' | 'Job' | 'Deployment' | 'Node' | string;
    Type: string;
    Key: string;
    Namespace?: string;
    FilterKeys?: string[] | null;
    Index: number;
    Payload: { Allocation?: Allocation; Evaluation?: Evaluation; Job?: NomadJob };
  }>;
}
