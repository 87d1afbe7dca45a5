import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.ts';

/** moto's server from integration/.venv (scripts/setup-python.sh installs the pinned moto[server]). */
export const MOTO_SERVER =
  process.env.AIRFLEET_MOTO_SERVER ?? fileURLToPath(new URL('../.venv/bin/moto_server', import.meta.url));

export function motoAvailability(): { ok: true; binary: string } | { ok: false; reason: string } {
  return existsSync(MOTO_SERVER)
    ? { ok: true, binary: MOTO_SERVER }
    : { ok: false, reason: `no moto server at ${MOTO_SERVER}; run \`bash scripts/setup-python.sh\`` };
}

export interface MotoOptions {
  /** Extra environment for the server. @default AWS managed IAM policies loaded (Batch and ECS roles attach them) */
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
  const child = spawn(MOTO_SERVER, ['-H', '127.0.0.1', '-p', String(port)], {
    env: { ...process.env, MOTO_IAM_LOAD_MANAGED_POLICIES: 'true', ...options.env },
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
