/** The API's shapes as the dashboard reads them (the service's /openapi.json is the reference). */

export const WORKLOAD_STATES = [
  'queued',
  'submitting',
  'pending',
  'running',
  'succeeded',
  'failed',
  'cancelled',
] as const;
export type WorkloadState = (typeof WORKLOAD_STATES)[number];
export const TERMINAL: readonly WorkloadState[] = ['succeeded', 'failed', 'cancelled'];

export const BACKENDS = ['pool', 'local', 'nomad', 'batch'] as const;

export const WORKER_STATES = [
  'idle',
  'running',
  'maintenance_request',
  'maintenance_pending',
  'maintenance_mode',
  'draining',
  'offline',
  'lost',
] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

export type Scope = 'submit' | 'read' | 'admin' | 'enroll';

export interface Session {
  name: string;
  scopes: Scope[];
}

export interface Workload {
  id: string;
  key: string;
  command: string[];
  image: string | null;
  env: Record<string, string>;
  queue: string;
  backend: string;
  poolSlots: number;
  priorityWeight: number;
  resources: { cpu?: number; memoryMb?: number; gpus?: number };
  timeouts: { pendingSeconds?: number; runSeconds?: number };
  state: WorkloadState;
  attempt: number;
  infraRetries: number;
  maxInfraRetries: number;
  workerId: string | null;
  workerName: string | null;
  backendRef: string | null;
  reason: string | null;
  exitCode: number | null;
  message: string | null;
  cancelRequested: boolean;
  stopReason: string | null;
  stopMessage: string | null;
  createdAt: string;
  queuedAt: string;
  leasedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
  waiting?: string;
}

export interface FeedEvent {
  seq: number;
  workloadId: string;
  key: string;
  state: WorkloadState;
  attempt: number;
  reason: string | null;
  exitCode: number | null;
  at: string;
}

export interface WorkerMetrics {
  cpuPercent?: number;
  memoryUsedBytes?: number;
  memoryTotalBytes?: number;
  diskFreeBytes?: number;
  diskTotalBytes?: number;
  load1?: number;
  load5?: number;
  load15?: number;
}

export interface Worker {
  id: string;
  name: string;
  queues: string[];
  concurrency: number;
  labels: Record<string, string>;
  state: WorkerState;
  maintenance: boolean;
  maintenanceComment: string | null;
  draining: boolean;
  runtime: string | null;
  version: string | null;
  metrics: WorkerMetrics;
  registeredAt: string;
  lastHeartbeat: string;
  usedSlots: number;
  runningWorkloads: number;
}

export interface QueueRow {
  queue: string;
  backend: string;
  queued: number;
  queuedSlots: number;
  pending: number;
  running: number;
  runningSlots: number;
  oldestQueuedSeconds: number;
  workers: number;
}

export interface LogSlice {
  attempt: number;
  stream: 'stdout' | 'stderr';
  offset: number;
  nextOffset: number;
  data: string;
  complete: boolean;
  state: WorkloadState;
}

export interface Quantiles {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
}

export interface DispatchSample {
  at: string;
  seconds: number;
  submitted: number;
  dispatched: number;
  started: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  dispatchLatency: Quantiles | null;
  startLatency: Quantiles | null;
}

export interface DispatchHistory {
  instance: string;
  intervalSeconds: number;
  since: string;
  samples: DispatchSample[];
  total: { dispatchLatency: Quantiles | null; startLatency: Quantiles | null };
}
