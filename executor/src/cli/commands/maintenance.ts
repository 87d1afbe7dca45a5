import { hostname } from 'node:os';
import { type Command, InvalidArgumentError } from 'commander';
import type { Worker } from '../../store/workers.ts';
import { clientFrom, type GlobalOptions } from '../context.ts';
import { print } from '../output.ts';

/** `airfleet maintenance on|off`. */
export function maintenanceCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('maintenance')
    .description('put a worker in maintenance (no new tasks; running ones finish) or take it out')
    .argument('<mode>', 'on or off')
    .option('--worker <name>', 'worker name (default: this host name)', hostname())
    .option('--comment <text>', 'why; shown with the worker')
    .option('--wait', 'with "on": wait until the worker has drained')
    .action(async (mode: string, opts: { worker: string; comment?: string; wait?: boolean }) => {
      if (mode !== 'on' && mode !== 'off') throw new InvalidArgumentError(`mode must be 'on' or 'off', got '${mode}'`);
      const g = globals();
      const client = clientFrom(g);
      let w = await client.request<Worker>('POST', `/v1/workers/${encodeURIComponent(opts.worker)}/maintenance`, {
        body: { on: mode === 'on', ...(opts.comment ? { comment: opts.comment } : {}) },
      });
      while (
        mode === 'on' &&
        opts.wait &&
        w.state !== 'maintenance_mode' &&
        w.state !== 'offline' &&
        w.state !== 'lost'
      ) {
        await new Promise((r) => setTimeout(r, 1_000));
        w = await client.request<Worker>('GET', `/v1/workers/${encodeURIComponent(opts.worker)}`);
      }
      print(g.json, w, () => `${w.name}: ${w.state}${w.maintenanceComment ? ` (${w.maintenanceComment})` : ''}`);
    });
}
