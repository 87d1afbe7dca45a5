import { WaiterSet } from '../../src/lib/waiters.ts';

describe('parked long-polls (WaiterSet)', () => {
  it('wakes the oldest waiters first, as many as asked', async () => {
    const set = new WaiterSet<string>();
    const a = set.park(['q'], 5_000);
    const b = set.park(['q'], 5_000);
    set.wake('q', 1);
    expect(await a.promise).toBe('woken');
    expect(b.woken).toBe(false);
    set.wake('q', 1);
    expect(await b.promise).toBe('woken');
  });

  it('times out a waiter nobody wakes', async () => {
    const set = new WaiterSet<string>();
    expect(await set.park(['q'], 20).promise).toBe('timeout');
    expect(set.size()).toBe(0);
  });

  it('remembers a wake-up that parked waiters could not take, for a client between two parks', () => {
    const set = new WaiterSet<string>({ remember: true });
    const mark = set.mark();
    set.park(['q'], 5_000);
    set.wake('q', 1); // answered by the parked waiter: not a concern of anybody else
    expect(set.signalledSince(['q'], mark)).toBe(false);
    set.wake('q', 1); // nobody parked on q any more
    expect(set.signalledSince(['q'], mark)).toBe(true);
    expect(set.signalledSince(['other'], mark)).toBe(false);
    expect(set.signalledSince(['q'], set.mark())).toBe(false); // only what came after the mark counts
  });

  it('counts a wake-up of all waiters of a key, and of everything, as a signal to everybody', () => {
    const set = new WaiterSet<string>({ remember: true });
    const mark = set.mark();
    set.park(['w:1'], 5_000);
    set.wake('w:1');
    expect(set.signalledSince(['w:1'], mark)).toBe(true);
    const later = set.mark();
    set.wakeAll();
    expect(set.signalledSince(['anything'], later)).toBe(true);
  });

  it('keeps no record unless asked to (log followers)', () => {
    const set = new WaiterSet<string>();
    const mark = set.mark();
    set.wake('workload-1');
    expect(set.signalledSince(['workload-1'], mark)).toBe(false);
  });
});
