import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import type { LogStream } from '../store/logs.ts';
import {
  DockerOptionsError,
  type DockerTaskOptions,
  dockerTaskOptions,
  resolveSecretsDirs,
  type SecretsDirs,
} from './docker-task-options.ts';
import { type RunningTask, StartError, type TaskExit, type TaskLease, type TaskRuntime } from './runtime.ts';
import { prepareTaskNetwork } from './task-network.ts';

export interface DockerRuntimeOptions {
  /**
   * Host directories secret mounts (`execConfig.docker.secrets[].source`) may come from.
   * @default none: no secret mounts
   */
  secretsDirs?: string[];
  /**
   * Run task containers on the host's network (they can reach everything the host can, the instance
   * metadata service included) instead of the task network.
   * @default false
   */
  hostNetwork?: boolean;
  /**
   * The user-defined bridge network task containers join; created when missing, with link-local
   * (instance metadata) addresses rejected (worker/task-network.ts).
   * @default 'airfleet-tasks'
   */
  taskNetwork?: string;
}

/**
 * Runs each task in its own container on the worker's Docker engine: on the task network (or the host's,
 * with `hostNetwork`), with secrets mounted read-only from the worker's secrets directories
 * (worker/docker-task-options.ts), GPUs on request. Call `setUpNetwork()` once before the first task.
 */
export class DockerRuntime implements TaskRuntime {
  readonly name = 'docker' as const;
  private readonly docker: Docker;
  private readonly workerName: string;
  private readonly secretsDirs: SecretsDirs;
  private readonly hostNetwork: boolean;
  private readonly taskNetwork: string;
  private networkMode: string | null = null;

  constructor(workerName: string, options: DockerRuntimeOptions = {}, docker = new Docker()) {
    this.docker = docker;
    this.workerName = workerName;
    this.secretsDirs = resolveSecretsDirs(options.secretsDirs ?? []);
    this.hostNetwork = options.hostNetwork ?? false;
    this.taskNetwork = options.taskNetwork ?? 'airfleet-tasks';
  }

  /** Sets up the task network and its metadata block (or notes host networking), before any task; fails closed. */
  async setUpNetwork(): Promise<{ networkMode: string }> {
    this.networkMode = this.hostNetwork
      ? 'host'
      : (await prepareTaskNetwork(this.docker, this.taskNetwork)).networkMode;
    return { networkMode: this.networkMode };
  }

  /**
   * Containers are not children of the worker: when a worker dies they run on. A worker coming back under the
   * same name finds its predecessor's task containers by label and removes them (their attempts are settled
   * by the service when it registers again), so nothing of a dead worker runs beside the service's retry.
   */
  async cleanupOrphans(): Promise<number> {
    const containers = await this.docker.listContainers({
      all: true,
      filters: { label: [`airfleet.worker=${this.workerName}`] },
    });
    for (const c of containers)
      await this.docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
    return containers.length;
  }

  /** The image is there (pulled if missing) and the task's docker options are valid, before the start. */
  async prepare(lease: TaskLease): Promise<void> {
    this.options(lease);
    await this.ensureImage(lease.image!);
  }

  private options(lease: TaskLease): DockerTaskOptions {
    if (!lease.image) throw new StartError('driver', 'the docker runtime needs an image: set `image` on the workload');
    if (!this.networkMode)
      throw new StartError('driver', 'the docker runtime has no network yet (call setUpNetwork())');
    try {
      return dockerTaskOptions(lease.execConfig.docker, this.secretsDirs);
    } catch (error) {
      if (error instanceof DockerOptionsError) throw new StartError('driver', error.message);
      throw error;
    }
  }

  async start(lease: TaskLease, onOutput: (stream: LogStream, data: Buffer) => void): Promise<RunningTask> {
    const options = this.options(lease);
    const image = lease.image!;
    const gpus = lease.resources.gpus ?? 0;
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer({
        Image: image,
        Cmd: lease.command,
        Env: Object.entries({
          AIRFLEET_WORKLOAD_ID: lease.id,
          AIRFLEET_ATTEMPT: String(lease.attempt),
          ...lease.env,
          ...lease.secretEnv,
        }).map(([k, v]) => `${k}=${v}`),
        Labels: {
          ...options.labels,
          'airfleet.workload': lease.id,
          'airfleet.attempt': String(lease.attempt),
          'airfleet.worker': this.workerName,
        },
        ...(options.user ? { User: options.user } : {}),
        ...(options.workingDir ? { WorkingDir: options.workingDir } : {}),
        HostConfig: {
          NetworkMode: this.networkMode!,
          // Structured mounts, not `source:target:ro` strings: a ':' or ',' in a path cannot add options.
          Mounts: options.mounts.map((m) => ({
            Type: 'bind' as const,
            Source: m.source,
            Target: m.target,
            ReadOnly: true,
          })),
          ...(lease.resources.memoryMb ? { Memory: lease.resources.memoryMb * 1024 * 1024 } : {}),
          ...(lease.resources.cpu ? { NanoCpus: Math.round(lease.resources.cpu * 1e9) } : {}),
          ...(gpus > 0 ? { DeviceRequests: [{ Driver: 'nvidia', Count: gpus, Capabilities: [['gpu']] }] } : {}),
        },
      });
    } catch (error) {
      throw new StartError('driver', `docker could not create the container: ${(error as Error).message}`);
    }
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const out = new PassThrough();
    const err = new PassThrough();
    out.on('data', (d: Buffer) => onOutput('stdout', d));
    err.on('data', (d: Buffer) => onOutput('stderr', d));
    this.docker.modem.demuxStream(stream, out, err);
    // The container's end and the end of its output stream are separate events: the exit must not be
    // reported before the last bytes were handed on, or the log would be cut short.
    const streamEnded = new Promise<void>((resolve) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', () => resolve());
    });
    try {
      await container.start();
    } catch (error) {
      await container.remove({ force: true }).catch(() => undefined);
      throw new StartError('driver', `docker could not start the container: ${(error as Error).message}`);
    }
    const exited = (async (): Promise<TaskExit> => {
      const result = (await container.wait()) as { StatusCode: number };
      await Promise.race([streamEnded, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      const info = await container.inspect().catch(() => null);
      await container.remove({ force: true }).catch(() => undefined);
      if (info?.State.OOMKilled) {
        return {
          exitCode: result.StatusCode,
          signal: null,
          reason: 'oom',
          message: 'the container ran out of memory (OOMKilled)',
        };
      }
      return { exitCode: result.StatusCode, signal: null };
    })();
    let killTimer: NodeJS.Timeout | null = null;
    void exited.then(() => killTimer && clearTimeout(killTimer));
    return {
      exited,
      stop: (signal, graceMs) => {
        container.kill({ signal }).catch(() => undefined);
        if (!killTimer)
          killTimer = setTimeout(() => container.kill({ signal: 'SIGKILL' }).catch(() => undefined), graceMs);
      },
    };
  }

  /** Uses a local image as it is; pulls only when missing, and reports a failed pull as `image_pull`. */
  private async ensureImage(image: string): Promise<void> {
    try {
      await this.docker.getImage(image).inspect();
      return;
    } catch {
      // not present locally: pull below
    }
    try {
      const stream = await this.docker.pull(image);
      await new Promise<void>((resolve, reject) =>
        this.docker.modem.followProgress(stream, (error) => (error ? reject(error) : resolve())),
      );
    } catch (error) {
      throw new StartError('image_pull', `Failed to pull image ${image}: ${(error as Error).message}`);
    }
  }
}
