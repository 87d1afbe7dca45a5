import type { Backend } from '../backends/backend.ts';
import type { BackendName } from '../domain/workload.ts';
import { Waiter } from '../lib/waiters.ts';
import { markStopSent, stopsToSend } from '../store/workloads.ts';
import type { Lifecycle } from './lifecycle.ts';

/**
 * Carries out the stops the service asked for (cancels, pending and run timeouts) on the push attempts this
 * instance owns: asks the backend, and asks again every `resendSeconds` until the attempt's end is reported.
 * A stop is durable: it lives on the workload's row, not here, so a backend that fails to answer, or an
 * instance that dies before asking, delays it but never loses it (the adopter of the attempt sends it).
 * Pull workers need none of this: every poll and heartbeat answer lists what their worker must stop.
 */
export class Stopper {
  private readonly life: Lifecycle;
  private readonly backends: ReadonlyMap<BackendName, Backend>;
  private readonly instanceId: string;
  private readonly resendSeconds: number;
  private sleeper: Waiter | null = null;
  private closed = false;
  private loop: Promise<void> | null = null;

  constructor(life: Lifecycle, backends: ReadonlyMap<BackendName, Backend>, instanceId: string, resendSeconds: number) {
    this.life = life;
    this.backends = backends;
    this.instanceId = instanceId;
    this.resendSeconds = resendSeconds;
  }

  start(): void {
    this.loop = this.run();
  }

  /** A stop was asked for (here or on a peer): look now. */
  wake(): void {
    this.sleeper?.notify();
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      try {
        await this.pass();
      } catch (error) {
        this.life.logger.warn({ err: (error as Error).message }, 'sending stops failed; will retry');
      }
      if (this.closed) break;
      this.sleeper = new Waiter(1_000);
      await this.sleeper.promise;
      this.sleeper = null;
    }
  }

  async pass(): Promise<number> {
    const due = await stopsToSend(this.life.db, this.instanceId, this.resendSeconds, 100);
    let sent = 0;
    for (const w of due) {
      const backend = this.backends.get(w.backend);
      if (!backend) continue;
      try {
        await backend.cancel({ workloadId: w.id, attempt: w.attempt, ref: w.backendRef });
        await markStopSent(this.life.db, w.id, w.attempt);
        sent++;
      } catch (error) {
        this.life.logger.warn(
          {
            workload: w.id,
            attempt: w.attempt,
            backend: w.backend,
            reason: w.stopReason,
            err: (error as Error).message,
          },
          'the backend did not take the stop; asking again shortly',
        );
      }
    }
    return sent;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    await this.loop;
  }
}
