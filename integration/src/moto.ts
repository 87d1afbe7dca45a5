import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { testLabels } from './docker-env.ts';
import { freePort } from './ports.ts';

/** The Python of integration/.venv (scripts/setup-python.sh installs the pinned moto[server,batch]). */
export const MOTO_PYTHON =
  process.env.AIRFLEET_MOTO_PYTHON ?? fileURLToPath(new URL('../.venv/bin/python', import.meta.url));
/** moto's own server, started through a launcher that labels the containers moto's Batch backend runs. */
const LAUNCHER = fileURLToPath(new URL('../python/moto_server_labelled.py', import.meta.url));

export function motoAvailability(): { ok: true; binary: string } | { ok: false; reason: string } {
  return existsSync(MOTO_PYTHON)
    ? { ok: true, binary: MOTO_PYTHON }
    : { ok: false, reason: `no Python venv with moto at ${MOTO_PYTHON}; run \`bash scripts/setup-python.sh\`` };
}

/**
 * How moto moves Batch jobs through their states (its state manager, `batch::job`). moto's default advances
 * a job one state per step of its runner; `time` holds each state for `seconds`; `manual` with a huge
 * `times` freezes every job where it is (see docs/batch-on-moto.md).
 */
export type MotoTransition =
  | { progression: 'immediate' }
  | { progression: 'time'; seconds: number }
  | {
      progression: 'manual';
      times: number;
    };

export interface MotoOptions {
  /**
   * Extra environment for the server. @default AWS managed IAM policies loaded (Batch and ECS roles attach
   * them), Batch job containers on the host network and labelled with this test run's labels
   */
  env?: Record<string, string>;
  /** @default 30 s */
  startupTimeoutMs?: number;
}

/** A moto server on a free loopback port. */
export class StartedMoto {
  readonly endpoint: string;
  readonly port: number;
  private readonly process: ChildProcess;
  private readonly log: string[];

  constructor(process: ChildProcess, port: number, log: string[]) {
    this.process = process;
    this.port = port;
    this.endpoint = `http://127.0.0.1:${port}`;
    this.log = log;
  }

  /** Sets how moto's state manager advances `model` (e.g. `batch::job`) for every resource of the server. */
  async setTransition(model: string, transition: MotoTransition): Promise<void> {
    await this.stateManager('set-transition', { model_name: model, transition });
  }

  /** Back to moto's default transition for `model`. */
  async unsetTransition(model: string): Promise<void> {
    await this.stateManager('unset-transition', { model_name: model });
  }

  private async stateManager(action: string, body: unknown): Promise<void> {
    const response = await fetch(`${this.endpoint}/moto-api/state-manager/${action}`, {
      method: 'POST',
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`moto ${action} answered ${response.status}: ${await response.text()}`);
  }

  /** The server's last log lines, for failure messages. */
  recentLog(lines = 30): string {
    return this.log.join('').trim().split('\n').slice(-lines).join('\n');
  }

  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.process.once('exit', () => resolve()));
    this.process.kill('SIGTERM');
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Starts moto in server mode and waits until it answers its own API. */
export async function startMoto(options: MotoOptions = {}): Promise<StartedMoto> {
  const port = await freePort();
  const log: string[] = [];
  const child = spawn(MOTO_PYTHON, [LAUNCHER, '-H', '127.0.0.1', '-p', String(port)], {
    env: {
      ...process.env,
      MOTO_IAM_LOAD_MANAGED_POLICIES: 'true',
      // Batch job containers share the host's network, like every test container, so a job reaches moto
      // (Secrets Manager, for its secret environment) on 127.0.0.1.
      MOTO_DOCKER_NETWORK_MODE: 'host',
      AIRFLEET_MOTO_CONTAINER_LABELS: JSON.stringify(testLabels()),
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (chunk: Buffer) => {
    log.push(chunk.toString());
    if (log.length > 500) log.splice(0, log.length - 500);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const moto = new StartedMoto(child, port, log);
  const deadline = Date.now() + (options.startupTimeoutMs ?? 30_000);
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}:\n${moto.recentLog()}`);
    try {
      const response = await fetch(`${moto.endpoint}/moto-api/`, { signal: AbortSignal.timeout(1_000) });
      if (response.ok) return moto;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await moto.stop();
  throw new Error(`moto_server did not answer on ${moto.endpoint} within the startup timeout:\n${moto.recentLog()}`);
}
