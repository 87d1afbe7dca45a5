import { statfs } from 'node:fs/promises';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import type { WorkerMetrics } from '../store/workers.ts';

/** CPU, memory, disk and load of the worker's host, sent with every heartbeat. */
export class SystemMetrics {
  private last = cpuTimes();
  private readonly diskPath: string;

  constructor(diskPath: string) {
    this.diskPath = diskPath;
  }

  async read(): Promise<WorkerMetrics> {
    const now = cpuTimes();
    const busy = now.busy - this.last.busy;
    const total = now.total - this.last.total;
    this.last = now;
    const [load1, load5, load15] = loadavg() as [number, number, number];
    let disk: { diskFreeBytes?: number; diskTotalBytes?: number } = {};
    try {
      const s = await statfs(this.diskPath);
      disk = { diskFreeBytes: s.bavail * s.bsize, diskTotalBytes: s.blocks * s.bsize };
    } catch {
      // a missing path just leaves disk figures out
    }
    return {
      cpuPercent: total > 0 ? Math.round((busy / total) * 1000) / 10 : 0,
      memoryUsedBytes: totalmem() - freemem(),
      memoryTotalBytes: totalmem(),
      ...disk,
      load1,
      load5,
      load15,
    };
  }
}

function cpuTimes(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const cpu of cpus()) {
    const t = cpu.times;
    busy += t.user + t.nice + t.sys + t.irq;
    total += t.user + t.nice + t.sys + t.irq + t.idle;
  }
  return { busy, total };
}
