import { Batcher } from '../../src/lib/batcher.ts';

/** A batcher whose runs are recorded and can be held open, to see what it groups and when. */
function recording(windowMs: number, maxParallel = 1) {
  const batches: string[][] = [];
  let hold: Promise<void> | null = null;
  const batcher = new Batcher<string, string>({
    run: async (inputs) => {
      batches.push(inputs);
      if (hold) await hold;
      return inputs.map((i) => i.toUpperCase());
    },
    windowMs,
    maxBatch: 100,
    maxParallel,
  });
  const holdRuns = () => {
    let release!: () => void;
    hold = new Promise((resolve) => {
      release = resolve;
    });
    return () => {
      hold = null;
      release();
    };
  };
  return { batcher, batches, holdRuns };
}

describe('Batcher (lib/batcher.ts): grouping submissions into one insert', () => {
  it('runs a call at once when nothing is in flight, however long the window', async () => {
    // A window of a minute: if the idle call waited for it, this test would time out.
    const { batcher, batches } = recording(60_000);
    await expect(batcher.add('a')).resolves.toBe('A');
    expect(batches).toEqual([['a']]);
  }, 5_000);

  it('groups the calls of one turn of the event loop', async () => {
    const { batcher, batches } = recording(60_000);
    await expect(Promise.all(['x', 'y', 'z'].map((i) => batcher.add(i)))).resolves.toEqual(['X', 'Y', 'Z']);
    expect(batches).toEqual([['x', 'y', 'z']]);
  }, 5_000);

  it('while a batch runs, gathers what arrives into the next one', async () => {
    const { batcher, batches, holdRuns } = recording(5);
    const release = holdRuns();
    const first = batcher.add('a');
    await new Promise((resolve) => setImmediate(resolve)); // 'a' is running, held
    const rest = ['b', 'c', 'd'].map((i) => batcher.add(i));
    await new Promise((resolve) => setTimeout(resolve, 30)); // past the window: still held, nothing else ran
    expect(batches).toEqual([['a']]);
    release();
    await expect(Promise.all([first, ...rest])).resolves.toEqual(['A', 'B', 'C', 'D']);
    expect(batches).toEqual([['a'], ['b', 'c', 'd']]);
  });
});
