import type { Command } from 'commander';
import type { Workload } from '../../domain/workload.ts';
import { clientFrom, type GlobalOptions } from '../context.ts';
import { print, workloadLine } from '../output.ts';

/** `airfleet cancel`. */
export function cancelCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('cancel')
    .description('cancel a workload')
    .argument('<id>', 'workload id or key')
    .action(async (id: string) => {
      const g = globals();
      const w = await clientFrom(g).request<Workload>('POST', `/v1/workloads/${encodeURIComponent(id)}/cancel`);
      print(g.json, w, () => `${workloadLine(w)}${w.state === 'cancelled' ? '' : ' (its worker is stopping it)'}`);
    });
}
