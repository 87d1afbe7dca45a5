import { type PoolSample, withSample } from '../../src/store/pool-status.ts';

const at = (s: number) => new Date(Date.UTC(2026, 0, 1) + s * 1000).toISOString();
const sample = (s: number, desired: number, actual: number): PoolSample => ({ at: at(s), desired, actual });

describe("a pool's desired/actual history (GET /v1/pools, the dashboard's chart)", () => {
  it('adds a sample when a figure changes, or half a minute after the last one; otherwise not', () => {
    let h: PoolSample[] = [];
    h = withSample(h, sample(0, 1, 1));
    h = withSample(h, sample(5, 1, 1)); // nothing changed, 5 s later
    h = withSample(h, sample(10, 3, 1)); // desired changed
    h = withSample(h, sample(40, 3, 1)); // 30 s since the last sample
    expect(h).toEqual([sample(0, 1, 1), sample(10, 3, 1), sample(40, 3, 1)]);
  });

  it('keeps the last hour only, and at most 240 samples', () => {
    let h: PoolSample[] = [];
    for (let s = 0; s <= 7200; s += 10) h = withSample(h, sample(s, s % 20 === 0 ? 1 : 2, 1));
    expect(Date.parse(h.at(-1)!.at) - Date.parse(h[0]!.at)).toBeLessThanOrEqual(3_600_000);
    expect(h.length).toBe(240);
    expect(h.at(-1)).toEqual(sample(7200, 1, 1));
  });
});
