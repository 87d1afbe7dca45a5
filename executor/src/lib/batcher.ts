/**
 * Groups calls that arrive close together into one unit of work (one INSERT for many submissions), the
 * way graphile-worker batches its queue operations. Each caller gets its own result back, or the batch's
 * error.
 */
export class Batcher<I, O> {
  private pending: Array<{ input: I; resolve: (o: O) => void; reject: (e: unknown) => void }> = [];
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private running = 0;
  private readonly run: (inputs: I[]) => Promise<Array<O | Error>>;
  private readonly windowMs: number;
  private readonly maxBatch: number;
  private readonly maxParallel: number;

  constructor(options: {
    run: (inputs: I[]) => Promise<Array<O | Error>>;
    windowMs: number;
    maxBatch: number;
    maxParallel: number;
  }) {
    this.run = options.run;
    this.windowMs = options.windowMs;
    this.maxBatch = options.maxBatch;
    this.maxParallel = options.maxParallel;
  }

  add(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ input, resolve, reject });
      if (this.pending.length >= this.maxBatch) this.flush();
      else if (this.running === 0) {
        // Nothing in flight: waiting out the window would only add its length to this call's latency.
        // What arrives in the same turn of the event loop (requests parsed from one read) still goes
        // together; under load, calls arriving while a batch runs wait for the window and group.
        this.immediate ??= setImmediate(() => this.flush());
      } else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.windowMs);
    });
  }

  private flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.immediate) {
      clearImmediate(this.immediate);
      this.immediate = null;
    }
    // While every slot is busy, let the next batch keep growing: the busier the database, the bigger
    // each batch and the fewer its round trips.
    if (this.running >= this.maxParallel || this.pending.length === 0) return;
    const batch = this.pending.splice(0, this.maxBatch);
    this.running++;
    this.run(batch.map((b) => b.input))
      .then((outputs) => {
        // An item may fail on its own (an Error in its place) without failing the rest of the batch.
        for (const [i, b] of batch.entries()) {
          const output = outputs[i];
          if (output instanceof Error) b.reject(output);
          else b.resolve(output as O);
        }
      })
      .catch((error) => {
        for (const b of batch) b.reject(error);
      })
      .finally(() => {
        this.running--;
        if (this.pending.length > 0) this.flush();
      });
  }
}
