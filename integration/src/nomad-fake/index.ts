import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import http, { type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { FakeCluster } from './cluster.ts';
import { handler, type StreamFaults } from './server.ts';
import { FakeStore } from './store.ts';
import { type FakeNode, type RunnerFaults, TaskRunner } from './task-runner.ts';

/**
 * A FAKE of Nomad's HTTP API, for tests only (no Nomad binary may be used here: its licence is not an open-source one; docs/nomad-backend.md).
 *
 * It mirrors the JSON shapes and behaviour of Nomad's documented API closely enough for the airfleet
 * backend, the autoscaler's Nomad driver and their suites: jobs register (with EnforceIndex) / parse (HCL) /
 * read / list / stop / purge, a group's count read and set (`/v1/job/:id/scale`, with Nomad's checks and
 * errors and its scaling events; a lower count stops the highest-indexed allocations with the task's kill
 * signal and kill timeout, new ones take the lowest free indexes), Nomad's runtime variables
 * (NOMAD_ALLOC_ID, NOMAD_ALLOC_INDEX, ...) interpolated into a task's env and args, evaluations with FailedTGAllocs and blocked evaluations, allocations with TaskStates and task
 * events under Nomad's type strings, X-Nomad-Index and blocking queries, the event stream (ndjson, `{}`
 * heartbeats, resumable from an index within a bounded buffer), `/v1/client/fs/{ls,cat,readat,logs,stat}`,
 * variables, an ACL token check and mutual TLS. Each task really runs as a Docker container labelled with
 * the run's test labels, host volumes bound from folders. Faults on request: no capacity, image missing,
 * node lost, OOM kill, slow or dropped event stream.
 *
 * What it does not do: Nomad's template language beyond the one shape the backend writes, HCL functions,
 * deployments, services, CSI, preemption, multi-region, ACL policies (a single management token), and the
 * restart and reschedule policies: a service task that exits is not restarted.
 */
export interface NomadFakeOptions {
  /** Mutual TLS: server key and certificate, and the CA client certificates must chain to. */
  tls?: { key: string; cert: string; ca: string };
  /**
   * Listen on this unix socket instead of TCP: a stand-in for the Task API socket
   * (`${NOMAD_SECRETS_DIR}/api.sock`), which any user of the task may connect to and which always asks for a
   * token (set `token` to the workload identity the task is given). No TLS there, as with Nomad's.
   */
  socketPath?: string;
  /** The fake node's datacenter and node pool. @default dc1, default */
  datacenter?: string;
  nodePool?: string;
  /** ACL token SecretID; none: ACLs are off. */
  token?: string;
  /** Host volumes of the fake node: name → folder (bound into containers). */
  hostVolumes?: Record<string, { path: string; readOnly?: boolean }>;
  /** Namespaces besides `default`. */
  namespaces?: string[];
  /** CPU (MHz) and memory (MB) of the single node. */
  nodeCpu?: number;
  nodeMemoryMb?: number;
  heartbeatMs?: number;
  /** Event buffer size (Nomad's default is 100 per topic; the fake keeps frames). */
  eventBuffer?: number;
}

export interface NomadFake {
  address: string;
  store: FakeStore;
  cluster: FakeCluster;
  runner: TaskRunner;
  node: FakeNode;
  /** Requests by route, and connections open now and at most. */
  calls: Map<string, number>;
  connections: { open: number; peak: number; total: number };
  requestCount(prefix?: string): number;
  faults: {
    noCapacity(on: boolean): void;
    imageMissing(image: string): void;
    oom(jobIdPrefix: string): void;
    loseNode(): void;
    /** The node is back (ready) and takes new allocations again. */
    restoreNode(): void;
    slowStream(delayMs: number): void;
    /** Ends every open event stream now; new ones are refused for `refuseMs`. */
    dropStreams(refuseMs?: number): void;
  };
  stop(): Promise<void>;
}

export async function startNomadFake(options: NomadFakeOptions = {}): Promise<NomadFake> {
  const root = mkdtempSync(join(tmpdir(), 'airfleet-nomad-fake-'));
  const store = new FakeStore(options.eventBuffer ?? 10_000);
  const runnerFaults: RunnerFaults = { oom: new Set(), missingImages: new Set() };
  const runner = new TaskRunner(new Docker(), store, join(root, 'allocs'), runnerFaults);
  const node: FakeNode = {
    ID: randomUUID(),
    Name: 'fake-client-1',
    Datacenter: options.datacenter ?? 'dc1',
    NodePool: options.nodePool ?? 'default',
    Status: 'ready',
    CPU: options.nodeCpu ?? 400_000,
    MemoryMB: options.nodeMemoryMb ?? 1_000_000,
    HostVolumes: Object.fromEntries(
      Object.entries(options.hostVolumes ?? {}).map(([k, v]) => [k, { Path: v.path, ReadOnly: v.readOnly ?? true }]),
    ),
    Attributes: {
      'kernel.name': 'linux',
      'cpu.arch': 'amd64',
      'driver.docker': '1',
      'unique.hostname': 'fake-client-1',
    },
  };
  const cluster = new FakeCluster(store, runner, [node]);
  cluster.namespaces.push(...(options.namespaces ?? []));
  const streams = new Set<ServerResponse>();
  const streamFaults: StreamFaults = { delayMs: 0, refuseUntil: 0 };
  const calls = new Map<string, number>();
  const handle = handler({
    store,
    cluster,
    runner,
    token: options.token ?? null,
    heartbeatMs: options.heartbeatMs ?? 10_000,
    faults: streamFaults,
    streams,
    calls,
  });
  const server = options.tls
    ? https.createServer(
        { ...options.tls, requestCert: true, rejectUnauthorized: true },
        (req, res) => void handle(req, res),
      )
    : http.createServer((req, res) => void handle(req, res));
  // Go's HTTP server keeps idle connections open; Node's closes them after 5 s, which races with clients
  // reusing them. Behave like Nomad.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  const connections = { open: 0, peak: 0, total: 0 };
  const sockets = new Set<Socket>();
  server.on(options.tls ? 'secureConnection' : 'connection', (socket: Socket) => {
    connections.open++;
    connections.total++;
    connections.peak = Math.max(connections.peak, connections.open);
    sockets.add(socket);
    socket.on('close', () => {
      connections.open--;
      sockets.delete(socket);
    });
  });
  let address: string;
  if (options.socketPath) {
    if (options.tls) throw new Error('the Task API socket speaks no TLS: give socketPath or tls, not both');
    if (!options.token) throw new Error('the Task API socket always requires a token: give one');
    const socketPath = options.socketPath;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, resolve);
    });
    // The task's user is not the fake's (root here, like the Nomad client): let it connect.
    chmodSync(socketPath, 0o666);
    address = `unix://${socketPath}`;
  } else {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    address = `${options.tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as { port: number }).port}`;
  }
  return {
    address,
    store,
    cluster,
    runner,
    node,
    calls,
    connections,
    requestCount: (prefix = '') => [...calls].filter(([k]) => k.includes(prefix)).reduce((n, [, v]) => n + v, 0),
    faults: {
      noCapacity(on) {
        cluster.faults.noCapacity = on;
        if (!on) cluster.unblock();
      },
      imageMissing: (image) => void runnerFaults.missingImages.add(image),
      oom: (prefix) => void runnerFaults.oom.add(prefix),
      loseNode: () => cluster.loseNode(node.ID),
      restoreNode() {
        node.Status = 'ready';
        cluster.unblock();
      },
      slowStream(delayMs) {
        streamFaults.delayMs = delayMs;
      },
      dropStreams(refuseMs = 0) {
        streamFaults.refuseUntil = Date.now() + refuseMs;
        for (const s of streams) s.destroy();
      },
    },
    async stop() {
      for (const s of streams) s.destroy();
      await runner.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(root, { recursive: true, force: true });
    },
  };
}
