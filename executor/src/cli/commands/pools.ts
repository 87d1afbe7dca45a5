import type { Command } from 'commander';
import type { PoolSummary } from '../../service/executor-service.ts';
import { clientFrom, type GlobalOptions } from '../context.ts';
import { print, table } from '../output.ts';

/** `airfleet pools`: each autoscaled pool's backlog, desired and actual workers, and its last decision. */
export function poolsCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('pools')
    .description('autoscaled pools: backlog slots, desired / target / running workers, the last decision')
    .action(async () => {
      const g = globals();
      const result = await clientFrom(g).request<{ pools: PoolSummary[] }>('GET', '/v1/pools');
      print(g.json, result, () =>
        result.pools.length === 0
          ? 'no autoscaled pools are configured (AIRFLEET_POOLS or AIRFLEET_POOLS_FILE; see docs/autoscaler.md)'
          : table(
              [
                'pool',
                'queues',
                'driver',
                'min-max',
                'queued/running slots',
                'desired',
                'target',
                'running',
                'scaling in',
                'last decision',
              ],
              result.pools.map((p) => {
                const s = p.status;
                return [
                  p.name,
                  p.queues.join(','),
                  p.driver,
                  `${p.minWorkers}-${p.maxWorkers}`,
                  s ? `${s.queuedSlots}/${s.runningSlots}` : '-',
                  s ? s.desired : '-',
                  s ? s.target : '-',
                  s ? s.running : '-',
                  s ? s.scalingIn.length : '-',
                  s
                    ? `${s.lastDecision.action}: ${s.error ?? s.lastDecision.reason}`
                    : 'not yet looked at by the leader',
                ];
              }),
            ),
      );
    });
}
