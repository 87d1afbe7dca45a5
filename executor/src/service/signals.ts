import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Db } from '../store/db.ts';

/**
 * Wake-ups between the parts of the service, and between service instances. In one process they are plain
 * events; with PostgreSQL they also go out as NOTIFY on one channel so parked long-polls in other instances
 * wake too. A notification is only a hint to look again: losing one costs latency, never correctness,
 * because every waiter also wakes on its own timeout.
 */
export type Signal =
  | { kind: 'queue'; queue: string; backend: string; count: number }
  /** Push backends have capacity again (or anything may have changed): the dispatcher should look. */
  | { kind: 'dispatch'; backend?: string }
  /** Something for the worker itself: a cancellation, a change of its configuration. */
  | { kind: 'worker'; workerId: string }
  /** Slots of the worker came free (a task of it ended). */
  | { kind: 'slots'; workerId: string }
  /** A stop (cancel, timeout) was asked for a push attempt: its owner instance should send it. */
  | { kind: 'stop' }
  | { kind: 'feed' }
  | { kind: 'log'; workloadId: string };

const CHANNEL = 'airfleet';

export class Signals {
  private readonly emitter = new EventEmitter();
  private readonly origin = randomUUID();
  private readonly db: Db;
  private readonly logger: Logger;
  private readonly outbox: Signal[] = [];

  constructor(db: Db, logger: Logger) {
    this.db = db;
    this.logger = logger;
    this.emitter.setMaxListeners(0);
  }

  async start(): Promise<void> {
    if (this.db.kind !== 'postgres') return;
    await this.db.listen(CHANNEL, (payload) => {
      if (payload === '') {
        // The LISTEN connection came back: anything may have happened meanwhile.
        this.emitter.emit('resync');
        return;
      }
      try {
        const message = JSON.parse(payload) as { o: string; s: Signal[]; all?: boolean };
        if (message.o === this.origin) return;
        if (message.all) this.emitter.emit('resync');
        for (const signal of message.s) this.emitter.emit('signal', signal);
      } catch {
        this.logger.warn({ payload }, 'ignored a malformed notification');
      }
    });
  }

  emit(signal: Signal): void {
    this.emitter.emit('signal', signal);
    if (this.db.kind !== 'postgres') return;
    // Peers get the signals of one tick in one NOTIFY: at thousands of state changes a second, one query
    // per signal would cost more than the changes themselves.
    this.outbox.push(signal);
    if (this.outbox.length === 1) setImmediate(() => this.flush());
  }

  private flush(): void {
    const signals = this.outbox.splice(0);
    // NOTIFY payloads are capped at 8000 bytes; past that, peers are told to look at everything.
    let payload = JSON.stringify({ o: this.origin, s: signals });
    if (payload.length > 7_900) payload = JSON.stringify({ o: this.origin, s: [], all: true });
    this.db
      .query('SELECT pg_notify($1, $2)', [CHANNEL, payload])
      .catch((error: Error) =>
        this.logger.debug({ err: error.message }, 'NOTIFY failed; peers rely on their timeouts'),
      );
  }

  on(fn: (signal: Signal) => void): void {
    this.emitter.on('signal', fn);
  }

  onResync(fn: () => void): void {
    this.emitter.on('resync', fn);
  }
}
