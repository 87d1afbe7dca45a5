import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Db, HeldLock } from '../store/db.ts';
import { heartbeatInstance, markInstanceStopping, registerInstance } from '../store/instances.ts';

/** The advisory lock whose holder is the leader (any number will do, as long as nothing else uses it). */
const LEADER_LOCK = 7218413;

export interface MembershipOptions {
  name: string;
  version: string;
  heartbeatMs: number;
  timeoutMs: number;
}

/**
 * This instance's place among the service instances on one database (docs/architecture.md, "Several
 * instances"): its row in `instances`, renewed every `heartbeatMs`, and leadership, held as a session
 * advisory lock on a connection of its own. The leader alone runs the periodic work that must happen once
 * (writing off silent workers, timeouts, reconciling dead instances' attempts, pruning).
 *
 * An instance that cannot renew its row for half the timeout stops claiming and submitting work
 * ({@link healthy}): by the time its peers take it for dead, it has stopped touching what it owned.
 */
export class Membership {
  readonly id = randomUUID();
  private readonly db: Db;
  private readonly logger: Logger;
  private readonly options: MembershipOptions;
  private timer: NodeJS.Timeout | null = null;
  private lock: HeldLock | null = null;
  /** performance.now() when the last heartbeat that succeeded was sent. */
  private lastRenewed = performance.now();
  private stopped = false;
  private ticking: Promise<void> = Promise.resolve();
  private readonly leaderListeners: Array<(leader: boolean) => void> = [];

  constructor(db: Db, logger: Logger, options: MembershipOptions) {
    this.db = db;
    this.logger = logger;
    this.options = options;
  }

  /** This instance's name (`instanceName`, or `<host>:<port>`). */
  get name(): string {
    return this.options.name;
  }

  async start(): Promise<void> {
    const sent = performance.now();
    const predecessors = await registerInstance(
      this.db,
      { id: this.id, name: this.options.name, host: hostname(), pid: process.pid, version: this.options.version },
      this.db.kind === 'pglite',
    );
    this.lastRenewed = sent;
    if (predecessors > 0) this.logger.info({ predecessors }, 'earlier instances of this name are gone');
    await this.tryLead();
    this.timer = setInterval(() => {
      this.ticking = this.ticking.then(() => this.tick());
    }, this.options.heartbeatMs);
  }

  isLeader(): boolean {
    return this.lock !== null && !this.stopped;
  }

  /** Whether this instance's row is fresh enough that it may claim and submit work. */
  healthy(): boolean {
    return !this.stopped && performance.now() - this.lastRenewed < this.options.timeoutMs / 2;
  }

  onLeadership(fn: (leader: boolean) => void): void {
    this.leaderListeners.push(fn);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const sent = performance.now();
    try {
      if (!(await heartbeatInstance(this.db, this.id))) {
        // Pruned by a peer that took us for long dead: come back as a new row (same id).
        await registerInstance(
          this.db,
          { id: this.id, name: this.options.name, host: hostname(), pid: process.pid, version: this.options.version },
          false,
        );
      }
      this.lastRenewed = sent;
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'instance heartbeat failed');
    }
    if (this.lock && !(await this.lock.check())) {
      this.lock = null;
      this.logger.warn('lost the leader lock (its database connection died)');
      this.notify(false);
    }
    await this.tryLead();
  }

  private async tryLead(): Promise<void> {
    if (this.lock || this.stopped) return;
    try {
      this.lock = await this.db.tryLock(LEADER_LOCK);
    } catch (error) {
      this.logger.debug({ err: (error as Error).message }, 'could not try the leader lock');
      return;
    }
    if (this.lock) {
      this.logger.info({ instance: this.id }, 'this instance leads');
      this.notify(true);
    }
  }

  private notify(leader: boolean): void {
    for (const fn of this.leaderListeners) fn(leader);
  }

  /**
   * Leaving: from now on the peers take this instance for dead (its attempts are reconciled by the leader),
   * and it gives up leadership.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking;
    await markInstanceStopping(this.db, this.id).catch((error: Error) =>
      this.logger.warn({ err: error.message }, 'could not mark this instance as stopping; peers will time it out'),
    );
    await this.lock?.release();
    this.lock = null;
  }
}

/** A stable name for the deployment slot: a restart under the same name takes over its predecessor at once. */
export function defaultInstanceName(port: number): string {
  return port > 0 ? `${hostname()}:${port}` : `${hostname()}:${randomUUID().slice(0, 8)}`;
}
