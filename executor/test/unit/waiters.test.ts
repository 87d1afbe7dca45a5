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

  it('a counted wake-up wakes waiters until their worth covers it', () => {
    const set = new WaiterSet<string>({ remember: true });
    const a = set.park(['q'], 5_000, 4);
    const b = set.park(['q'], 5_000, 4);
    const c = set.park(['q'], 5_000, 4);
    set.wake('q', 5); // a takes up to 4, b the fifth
    expect([a.woken, b.woken, c.woken]).toEqual([true, true, false]);
    c.notify();
  });

  it('what parked waiters could not take is left for clients between parks, each taking its worth', () => {
    const set = new WaiterSet<string>({ remember: true });
    const mark = set.mark();
    const parked = set.park(['q'], 5_000, 2);
    set.wake('q', 5); // the parked waiter takes 2; 3 are left
    expect(parked.woken).toBe(true);
    expect(set.signalledSince(['q'], mark, 2)).toBe(true); // 1 left
    expect(set.signalledSince(['q'], mark, 2)).toBe(true); // none left
    expect(set.signalledSince(['q'], mark, 2)).toBe(false); // a third client has nothing to look again for
  });

  it('a wake-up of all is never used up', () => {
    const set = new WaiterSet<string>({ remember: true });
    const mark = set.mark();
    set.wake('s:1');
    expect(set.signalledSince(['s:1'], mark, 4)).toBe(true);
    expect(set.signalledSince(['s:1'], mark, 4)).toBe(true);
  });
});
