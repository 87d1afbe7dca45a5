import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import type {
  Allocation,
  NomadJob,
  NomadTask,
  NomadTaskGroup,
  TaskEvent,
} from '../../../executor/src/backends/nomad/nomad-types.ts';
import { testLabels } from '../docker-env.ts';
import { RotatingLog } from './log-files.ts';
import type { FakeStore } from './store.ts';

export interface FakeNode {
  ID: string;
  Name: string;
  Datacenter: string;
  NodePool: string;
  Status: 'ready' | 'down';
  CPU: number;
  MemoryMB: number;
  /** Host volume name → folder on this machine (bound into containers). */
  HostVolumes: Record<string, { Path: string; ReadOnly: boolean }>;
  Attributes: Record<string, string>;
}

export interface RunnerFaults {
  /** Job ids (prefix) whose task the fake kills as the kernel's OOM killer would, once started. */
  oom: Set<string>;
  /** Images the fake pretends cannot be pulled even if present. */
  missingImages: Set<string>;
}

/** Small limiter: Docker create/start calls at once (the engine is shared with everyone on the machine). */
class Gate {
  private active = 0;
  private readonly queue: Array<() => void> = [];
  private readonly limit: number;
  constructor(limit: number) {
    this.limit = limit;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.queue.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

const now = () => Date.now() * 1e6;

/**
 * THE NOMAD FAKE's client: runs one allocation's task as a Docker container the way Nomad's Docker driver
 * does (image, command and args, entrypoint, env, host volumes bound read-only as asked, host network), and
 * writes its task events with Nomad's type strings ("Received", "Task Setup", "Driver", "Started",
 * "Terminated", "Killing", "Killed", "Driver Failure", "Not Restarting", "Template") and its logs into
 * rotated files.
 */
export class TaskRunner {
  private readonly docker: Docker;
  private readonly store: FakeStore;
  private readonly root: string;
  private readonly faults: RunnerFaults;
  private readonly gate = new Gate(12);
  private readonly containers = new Map<string, Docker.Container>();
  private readonly killed = new Set<string>();
  /** Bytes per log file, when a suite wants rotation sooner than Nomad's 1 MB minimum. */
  rotateBytes: number | null = null;

  constructor(docker: Docker, store: FakeStore, root: string, faults: RunnerFaults) {
    this.docker = docker;
    this.store = store;
    this.root = root;
    this.faults = faults;
  }

  allocDir(allocId: string): string {
    return join(this.root, allocId);
  }

  private event(alloc: Allocation, task: string, e: TaskEvent, change?: Partial<Allocation>, state?: object): void {
    const current = alloc.TaskStates![task]!;
    current.Events = [...(current.Events ?? []), { Time: now(), Details: {}, ...e }];
    Object.assign(current, state);
    Object.assign(alloc, change);
    this.store.putAlloc(alloc);
  }

  async run(alloc: Allocation, job: NomadJob, group: NomadTaskGroup, task: NomadTask, node: FakeNode): Promise<void> {
    const name = task.Name ?? 'task';
    const dir = this.allocDir(alloc.ID);
    const logs = join(dir, 'alloc', 'logs');
    mkdirSync(logs, { recursive: true });
    mkdirSync(join(dir, name, 'secrets'), { recursive: true });
    this.event(alloc, name, {
      Type: 'Task Setup',
      Message: 'Building Task Directory',
      DisplayMessage: 'Building Task Directory',
    });

    // Nomad's runtime variables, and the task's env interpolated with them (`${NOMAD_ALLOC_ID}`) and with
    // the node's attributes (`${attr.unique.hostname}`, `${node.datacenter}`); unknown references stay as written.
    const runtime: Record<string, string> = {
      NOMAD_ALLOC_ID: alloc.ID,
      NOMAD_SHORT_ALLOC_ID: alloc.ID.slice(0, 8),
      NOMAD_ALLOC_NAME: alloc.Name ?? '',
      NOMAD_ALLOC_INDEX: /\[(\d+)\]$/.exec(alloc.Name ?? '')?.[1] ?? '0',
      NOMAD_JOB_ID: job.ID!,
      NOMAD_JOB_NAME: job.Name ?? job.ID!,
      NOMAD_TASK_NAME: name,
      NOMAD_GROUP_NAME: group.Name ?? '',
      NOMAD_NAMESPACE: job.Namespace ?? 'default',
      NOMAD_REGION: job.Region ?? 'global',
      NOMAD_DC: node.Datacenter,
    };
    const interpolate = (text: string) =>
      text.replace(/\$\{([^}]+)\}/g, (whole, ref: string) => {
        if (ref in runtime) return runtime[ref]!;
        if (ref.startsWith('attr.')) return node.Attributes[ref.slice(5)] ?? whole;
        if (ref === 'node.datacenter') return node.Datacenter;
        if (ref === 'node.unique.name') return node.Name;
        if (ref === 'node.unique.id') return node.ID;
        return whole;
      });
    const env: Record<string, string> = {
      ...Object.fromEntries(Object.entries(task.Env ?? {}).map(([k, v]) => [k, interpolate(String(v))])),
      ...runtime,
    };
    for (const t of task.Templates ?? []) {
      const rendered = await this.renderTemplate(alloc, name, t.EmbeddedTmpl ?? '', job.Namespace ?? 'default');
      if (rendered === null) return;
      if (t.DestPath) writeFileSync(join(dir, name, t.DestPath), rendered.text, { mode: 0o600 });
      if (t.Envvars) Object.assign(env, rendered.env);
    }
    if (this.killed.has(alloc.ID)) return;

    const image = String(task.Config?.image ?? '');
    this.event(alloc, name, { Type: 'Driver', Message: `Downloading image`, DisplayMessage: 'Downloading image' });
    const present = await this.docker
      .getImage(image)
      .inspect()
      .then(() => true)
      .catch(() => false);
    if (!present || this.faults.missingImages.has(image)) {
      const message = `Failed to pull \`${image}\`: API error (404): pull access denied for ${image.split(':')[0]}, repository does not exist or may require 'docker login'`;
      this.event(alloc, name, {
        Type: 'Driver Failure',
        DisplayMessage: message,
        DriverError: message,
        FailsTask: true,
        Details: { driver_error: message, fails_task: 'true' },
      });
      this.event(
        alloc,
        name,
        { Type: 'Not Restarting', DisplayMessage: 'Error was unrecoverable', Details: { fails_task: 'true' } },
        { ClientStatus: 'failed', ClientDescription: 'Failed tasks' },
        { State: 'dead', Failed: true, FinishedAt: new Date().toISOString() },
      );
      return;
    }

    const binds: string[] = [];
    for (const m of task.VolumeMounts ?? []) {
      const volume = group.Volumes?.[m.Volume ?? ''];
      const host = volume ? node.HostVolumes[volume.Source ?? ''] : undefined;
      if (!host) continue;
      const readOnly = Boolean(m.ReadOnly || volume?.ReadOnly || host.ReadOnly);
      binds.push(`${host.Path}:${m.Destination}${readOnly ? ':ro' : ''}`);
    }
    const rawCommand = task.Config?.command as string | undefined;
    const command = rawCommand === undefined ? undefined : interpolate(rawCommand);
    const args = ((task.Config?.args as string[] | undefined) ?? []).map(interpolate);
    let container: Docker.Container;
    try {
      container = await this.gate.run(() =>
        this.docker.createContainer({
          Image: image,
          ...(command ? { Cmd: [command, ...args] } : args.length > 0 ? { Cmd: args } : {}),
          ...(task.Config?.entrypoint ? { Entrypoint: task.Config.entrypoint as string[] } : {}),
          Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
          Labels: { ...testLabels(), 'airfleet.nomad-fake.alloc': alloc.ID },
          // Removed by the engine once it exited and its output was delivered: one call fewer per task.
          HostConfig: { NetworkMode: 'host', Binds: binds, AutoRemove: true },
        }),
      );
    } catch (error) {
      const message = `failed to create container: ${(error as Error).message}`;
      this.event(
        alloc,
        name,
        { Type: 'Driver Failure', DisplayMessage: message, DriverError: message, FailsTask: true },
        { ClientStatus: 'failed' },
        { State: 'dead', Failed: true },
      );
      return;
    }
    this.containers.set(alloc.ID, container);
    const maxBytes = this.rotateBytes ?? (task.LogConfig?.MaxFileSizeMB ?? 10) * 1024 * 1024;
    const maxFiles = task.LogConfig?.MaxFiles ?? 10;
    const stdout = new RotatingLog(logs, name, 'stdout', maxBytes, maxFiles);
    const stderr = new RotatingLog(logs, name, 'stderr', maxBytes, maxFiles);
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const drained = new Promise<void>((resolve) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
    });
    container.modem.demuxStream(stream, stdout, stderr);
    // Asked before the start: with AutoRemove the container may be gone by the time a later wait would ask.
    const exited = container.wait({ condition: 'next-exit' }) as Promise<{ StatusCode: number }>;
    try {
      await this.gate.run(() => container.start());
    } catch (error) {
      const message = `failed to start container: ${(error as Error).message}`;
      this.event(
        alloc,
        name,
        { Type: 'Driver Failure', DisplayMessage: message, DriverError: message },
        { ClientStatus: 'failed' },
        { State: 'dead', Failed: true },
      );
      await container.remove({ force: true }).catch(() => undefined);
      return;
    }
    this.event(
      alloc,
      name,
      { Type: 'Started', DisplayMessage: 'Task started by client', Message: 'Task started by client' },
      { ClientStatus: 'running' },
      { State: 'running', StartedAt: new Date().toISOString() },
    );
    let oom = false;
    if ([...this.faults.oom].some((p) => job.ID!.startsWith(p))) {
      oom = true;
      setTimeout(() => void container.kill({ signal: 'SIGKILL' }).catch(() => undefined), 300);
    }
    const exit = await exited;
    // Unreferenced: a stream that never ends must not keep a test process alive after the fake stopped.
    await Promise.race([drained, new Promise((r) => setTimeout(r, 2_000).unref())]);
    // 137 is SIGKILL: the kernel's OOM killer or a kill; only then is it worth asking which (if still there).
    if (exit.StatusCode === 137 && !oom) {
      const inspected = await container.inspect().catch(() => null);
      oom = Boolean(inspected?.State?.OOMKilled);
    }
    this.containers.delete(alloc.ID);
    const code = exit.StatusCode;
    const wasKilled = this.killed.has(alloc.ID);
    const details = { exit_code: String(code), signal: code > 128 ? String(code - 128) : '0', oom_killed: String(oom) };
    const exitMessage = `Exit Code: ${code}${oom ? ', Exit Message: "OOM Killed"' : ''}`;
    if (wasKilled) {
      this.event(alloc, name, { Type: 'Terminated', DisplayMessage: exitMessage, Details: details, ExitCode: code });
      this.event(
        alloc,
        name,
        { Type: 'Killed', DisplayMessage: 'Task successfully killed' },
        { ClientStatus: 'complete' },
        {
          State: 'dead',
          Failed: false,
          FinishedAt: new Date().toISOString(),
        },
      );
      return;
    }
    if (alloc.ClientStatus === 'lost') return;
    const failed = code !== 0 || oom;
    this.event(alloc, name, { Type: 'Terminated', DisplayMessage: exitMessage, Details: details, ExitCode: code });
    if (failed) {
      this.event(
        alloc,
        name,
        { Type: 'Not Restarting', DisplayMessage: 'Policy allows no restarts', Details: { fails_task: 'true' } },
        { ClientStatus: 'failed', ClientDescription: 'Failed tasks' },
        { State: 'dead', Failed: true, FinishedAt: new Date().toISOString() },
      );
    } else {
      alloc.ClientStatus = 'complete';
      alloc.ClientDescription = 'All tasks have completed';
      const state = alloc.TaskStates![name]!;
      state.State = 'dead';
      state.Failed = false;
      state.FinishedAt = new Date().toISOString();
      this.store.putAlloc(alloc);
    }
  }

  /**
   * The one template shape the fake understands, the one the backend writes:
   * `{{ with nomadVar "<path>" }}{{ range $k, $v := . }}{{ $k }}={{ $v | toJSON }}\n{{ end }}{{ end }}`.
   * Like Nomad, it waits (a "Template" event saying what is missing) until the variable exists.
   */
  private async renderTemplate(
    alloc: Allocation,
    task: string,
    template: string,
    namespace: string,
  ): Promise<{ text: string; env: Record<string, string> } | null> {
    const match = /nomadVar "([^"]+)"/.exec(template);
    if (!match) return { text: template, env: {} };
    const path = match[1]!;
    let warned = false;
    for (;;) {
      if (this.killed.has(alloc.ID)) return null;
      const variable = this.store.vars.get(`${namespace}/${path}`);
      if (variable) {
        const env: Record<string, string> = {};
        const lines = Object.entries(variable.Items).map(([k, v]) => {
          env[k] = v;
          return `${k}=${JSON.stringify(v)}`;
        });
        return { text: `${lines.join('\n')}\n`, env };
      }
      if (!warned) {
        warned = true;
        this.event(alloc, task, {
          Type: 'Template',
          DisplayMessage: `Missing: nomad.var.block(${path}@${namespace}.global)`,
        });
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * Stops a task: "Killing", then the container is killed. With `graceful` (the scheduler stopping an
   * allocation on a lower count), as Nomad's client does: the task's kill signal, SIGKILL after its kill
   * timeout. Without, at once (the job stop path, whose timing the backend suite relies on).
   */
  async kill(alloc: Allocation, reason: string, graceful?: { signal: string; timeoutMs: number }): Promise<void> {
    const name = Object.keys(alloc.TaskStates ?? {})[0] ?? 'task';
    this.killed.add(alloc.ID);
    const container = this.containers.get(alloc.ID);
    if (!container) {
      if (alloc.ClientStatus === 'pending' || alloc.ClientStatus === 'running') {
        this.event(
          alloc,
          name,
          { Type: 'Killed', DisplayMessage: reason },
          { ClientStatus: 'complete' },
          { State: 'dead' },
        );
      }
      return;
    }
    const waitS = graceful ? Math.round(graceful.timeoutMs / 1000) : 5;
    this.event(alloc, name, {
      Type: 'Killing',
      DisplayMessage: `Sent interrupt. Waiting ${waitS}s before force killing`,
      KillReason: reason,
    });
    if (!graceful) {
      await container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
      return;
    }
    await container.kill({ signal: graceful.signal }).catch(() => undefined);
    setTimeout(() => {
      if (this.containers.get(alloc.ID) === container)
        void container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
    }, graceful.timeoutMs).unref();
  }

  /** The node went away: the container dies with it and nothing more is reported from it. */
  async lose(alloc: Allocation): Promise<void> {
    const container = this.containers.get(alloc.ID);
    await container?.kill({ signal: 'SIGKILL' }).catch(() => undefined);
  }

  async close(): Promise<void> {
    for (const [id, c] of this.containers) {
      this.killed.add(id);
      await c.remove({ force: true }).catch(() => undefined);
    }
  }
}
