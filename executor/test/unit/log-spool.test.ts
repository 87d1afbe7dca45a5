import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogSpool, ResumeFrom, type UploadChunk } from '../../src/worker/log-spool.ts';

/** A service's log store in miniature: appends only at its length, like store/logs.ts. */
function fakeStore() {
  const streams: Record<string, Buffer> = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };
  let down = false;
  let loseNextAnswer = false;
  const send: UploadChunk = async (stream, offset, data) => {
    if (down) throw new Error('connect ECONNREFUSED');
    const held = streams[stream]!;
    if (offset !== held.length) throw new ResumeFrom(held.length);
    streams[stream] = Buffer.concat([held, data]);
    if (loseNextAnswer) {
      loseNextAnswer = false;
      throw new Error('socket hang up'); // it landed; the answer did not
    }
    return streams[stream]!.length;
  };
  return {
    send,
    text: (stream: string) => streams[stream]!.toString(),
    setDown: (value: boolean) => {
      down = value;
    },
    loseNextAnswer: () => {
      loseNextAnswer = true;
    },
  };
}

describe('the worker log spool', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'airfleet-spool-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('an upload whose answer was lost resumes from what the service holds, with no gap and no repeat', async () => {
    const store = fakeStore();
    const spool = LogSpool.create(join(dir, 'a'), 1 << 20);
    spool.write('stdout', Buffer.from('first '));
    store.loseNextAnswer();
    await expect(spool.upload(store.send)).rejects.toThrow(/hang up/);
    spool.write('stdout', Buffer.from('second\n'));
    await spool.upload(store.send);
    expect(store.text('stdout')).toBe('first second\n');
    expect(spool.drained).toBe(true);
  });

  it('keeps output on disk through an outage and delivers every byte after it', async () => {
    const store = fakeStore();
    const spool = LogSpool.create(join(dir, 'b'), 64 << 20);
    store.setDown(true);
    const lines: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      const line = `line ${i} ${'x'.repeat(i % 200)}\n`;
      lines.push(line);
      spool.write(i % 3 === 0 ? 'stderr' : 'stdout', Buffer.from(line));
      if (i % 5_000 === 0) await expect(spool.upload(store.send)).rejects.toThrow(/ECONNREFUSED/);
    }
    store.setDown(false);
    await spool.upload(store.send);
    expect(store.text('stdout')).toBe(lines.filter((_, i) => i % 3 !== 0).join(''));
    expect(store.text('stderr')).toBe(lines.filter((_, i) => i % 3 === 0).join(''));
    // Acknowledged segments are gone from disk; only the current one of each stream stays.
    expect(readdirSync(join(dir, 'b')).sort()).toHaveLength(2);
  });

  it('past its bound it drops output and says so in the log, where it happened', async () => {
    const store = fakeStore();
    const spool = LogSpool.create(join(dir, 'c'), 100);
    store.setDown(true);
    spool.write('stdout', Buffer.from('a'.repeat(80)));
    spool.write('stdout', Buffer.from('b'.repeat(50))); // does not fit: dropped
    spool.write('stdout', Buffer.from('c'.repeat(30))); // does not fit either
    store.setDown(false);
    await spool.upload(store.send);
    spool.write('stdout', Buffer.from('tail\n'));
    await spool.upload(store.send);
    const text = store.text('stdout');
    expect(text.startsWith('a'.repeat(80))).toBe(true);
    expect(text).toContain('[airfleet: 80 bytes of stdout were dropped here');
    expect(text.endsWith('tail\n')).toBe(true);
    expect(text).not.toContain('bbb');
    expect(text).not.toContain('ccc');
  });

  it('a restarted worker finds its spool and sends only what the service lacks', async () => {
    const store = fakeStore();
    const first = LogSpool.create(join(dir, 'd'), 1 << 20);
    first.write('stdout', Buffer.from('before the crash, '));
    await first.upload(store.send);
    first.write('stdout', Buffer.from('never uploaded\n'));
    // The process dies here; a new one recovers the folder.
    const second = LogSpool.recover(join(dir, 'd'), 1 << 20);
    await second.upload(store.send);
    expect(store.text('stdout')).toBe('before the crash, never uploaded\n');
  });
});
