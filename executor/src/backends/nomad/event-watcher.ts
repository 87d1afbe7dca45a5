import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { BackendHost } from '../backend.ts';
import type { NomadClient } from './nomad-client.ts';
import type { Allocation, Evaluation, EventFrame } from './nomad-types.ts';

export const CURSOR_NAME = 'nomad-event-index';

export interface WatcherSink {
  /** Allocations and evaluations seen (from the stream or a resync), newest state of each. */
  apply(allocations: Allocation[], evaluations: Evaluation[]): void;
}

/**
 * Nomad's `filter` (a go-bexpr expression) for the lists of allocations and evaluations: only the jobs whose
 * id starts with `prefix`, so a resync on a shared cluster carries airfleet's jobs and not every team's. The
 * prefix is regex-escaped (it is validated to a-z, 0-9 and - anyway, nomad-config.ts).
 */
export function jobPrefixFilter(prefix: string): string {
  const regex = `^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`;
  return `JobID matches "${regex.replace(/["\\]/g, '\\$&')}"`;
}

export interface WatcherOptions {
  /** Only jobs whose id starts so are airfleet's. */
  jobPrefix: string;
  reconnectMs: number;
  /** No byte (Nomad sends `{}` every 10 s) for this long: the stream is dead, reconnect. */
  idleMs: number;
}

/**
 * One event stream per instance (`/v1/event/stream`, topics Allocation and Evaluation of the namespace),
 * resumed after a drop or a restart from the index stored in the database ({@link BackendHost.cursor}).
 *
 * Nomad keeps a bounded event buffer and, asked for an index it no longer holds, starts at the oldest it has:
 * transitions in between would be lost. So every (re)connection is followed by a resync: one blocking query
 * each on `/v1/allocations` and `/v1/evaluations` at the stored index, which answers at once when anything
 * changed since (and after its wait otherwise). The sink applies only what is newer than what it has
 * (ModifyIndex), so stream and resync may overlap in any order. Requests: two per reconnection, none per job.
 */
export class EventWatcher {
  private readonly client: NomadClient;
  private readonly host: BackendHost;
  private readonly sink: WatcherSink;
  private readonly options: WatcherOptions;
  private readonly logger: Logger;
  private readonly stop = new AbortController();
  private current: IncomingMessage | null = null;
  private loop: Promise<void> = Promise.resolve();
  private index = 0;
  private storedIndex = 0;
  private persistTimer: NodeJS.Timeout | null = null;
  /** For tests and the benchmark: connections opened and resyncs made. */
  readonly stats = { connects: 0, resyncs: 0, frames: 0, heartbeats: 0 };

  constructor(client: NomadClient, host: BackendHost, sink: WatcherSink, options: WatcherOptions) {
    this.client = client;
    this.host = host;
    this.sink = sink;
    this.options = options;
    this.logger = host.logger;
  }

  async start(): Promise<void> {
    const stored = await this.host.cursor.get(CURSOR_NAME);
    this.index = stored ? Number(stored) || 0 : 0;
    this.storedIndex = this.index;
    // The first resync before the first submit: what happened while no instance watched is applied now.
    await this.resync().catch((error: Error) =>
      this.logger.warn({ err: error.message }, 'first Nomad resync failed; the stream loop retries'),
    );
    this.loop = this.run();
    this.persistTimer = setInterval(() => void this.persist(), 1_000);
    this.persistTimer.unref();
  }

  get lastIndex(): number {
    return this.index;
  }

  /** Drops the stream now (tests of a dropped stream use the fake's fault instead). */
  reconnect(): void {
    this.current?.destroy();
  }

  async close(): Promise<void> {
    this.stop.abort();
    this.current?.destroy();
    if (this.persistTimer) clearInterval(this.persistTimer);
    await this.loop.catch(() => undefined);
    await this.persist();
  }

  private async persist(): Promise<void> {
    if (this.index <= this.storedIndex) return;
    const value = this.index;
    try {
      await this.host.cursor.set(CURSOR_NAME, String(value));
      this.storedIndex = value;
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'storing the Nomad event index failed');
    }
  }

  private async run(): Promise<void> {
    let first = true;
    while (!this.stop.signal.aborted) {
      try {
        const res = await this.client.stream('/v1/event/stream', {
          query: { index: this.index + 1, topic: ['Allocation:*', 'Evaluation:*'] },
          signal: this.stop.signal,
        });
        this.stats.connects++;
        this.current = res;
        // After a drop, the stream is open again (so nothing after now is missed): resync the gap.
        if (!first) void this.resync().catch((e: Error) => this.logger.warn({ err: e.message }, 'Nomad resync failed'));
        first = false;
        await this.read(res);
      } catch (error) {
        if (this.stop.signal.aborted) return;
        this.logger.warn({ err: (error as Error).message }, 'the Nomad event stream failed; reconnecting');
      } finally {
        this.current = null;
      }
      if (this.stop.signal.aborted) return;
      first = false;
      await new Promise((r) => setTimeout(r, this.options.reconnectMs));
    }
  }

  private read(res: IncomingMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      let buffer = '';
      let idle = setTimeout(() => res.destroy(new Error('no heartbeat')), this.options.idleMs);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        clearTimeout(idle);
        idle = setTimeout(
          () => res.destroy(new Error('no heartbeat from the Nomad event stream')),
          this.options.idleMs,
        );
        buffer += chunk;
        let nl = buffer.indexOf('\n');
        while (nl >= 0) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (line) this.frame(line);
          nl = buffer.indexOf('\n');
        }
      });
      res.on('end', () => {
        clearTimeout(idle);
        resolve();
      });
      res.on('error', (error) => {
        clearTimeout(idle);
        reject(error);
      });
      res.on('close', () => {
        clearTimeout(idle);
        resolve();
      });
    });
  }

  private frame(line: string): void {
    let frame: EventFrame & { Error?: string };
    try {
      frame = JSON.parse(line);
    } catch {
      this.logger.warn({ line: line.slice(0, 200) }, 'unreadable line in the Nomad event stream');
      return;
    }
    if (!frame.Events) {
      this.stats.heartbeats++;
      return;
    }
    this.stats.frames++;
    const allocations: Allocation[] = [];
    const evaluations: Evaluation[] = [];
    for (const e of frame.Events) {
      if (e.Payload.Allocation?.JobID.startsWith(this.options.jobPrefix)) allocations.push(e.Payload.Allocation);
      if (e.Payload.Evaluation?.JobID.startsWith(this.options.jobPrefix)) evaluations.push(e.Payload.Evaluation);
    }
    if (allocations.length > 0 || evaluations.length > 0) this.sink.apply(allocations, evaluations);
    if (frame.Index && frame.Index > this.index) this.index = frame.Index;
  }

  /**
   * Blocking queries at the stored index: what changed while the stream was away, in two requests, filtered
   * by Nomad to airfleet's jobs (and again here: a filter is only as good as the server that applies it).
   */
  private async resync(): Promise<void> {
    this.stats.resyncs++;
    const since = this.index;
    const query = { index: since, wait: '1s', filter: jobPrefixFilter(this.options.jobPrefix) };
    const [allocs, evals] = await Promise.all([
      this.client.request<Allocation[]>('GET', '/v1/allocations', { query, signal: this.stop.signal }),
      this.client.request<Evaluation[]>('GET', '/v1/evaluations', { query, signal: this.stop.signal }),
    ]);
    const mine = <T extends { JobID: string }>(xs: T[] | null) =>
      (xs ?? []).filter((x) => x.JobID.startsWith(this.options.jobPrefix));
    this.sink.apply(mine(allocs.data), mine(evals.data));
    const seen = Math.min(allocs.index ?? since, evals.index ?? since);
    if (this.index === since && seen > this.index) this.index = seen;
  }
}
