import { type Command, Option } from 'commander';
import { clientFrom, type GlobalOptions } from '../context.ts';
import { int } from '../parse.ts';

/** `airfleet logs`: a workload's stdout or stderr, optionally followed. */
export function logsCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('logs')
    .description('print a workload log (stdout and stderr apart)')
    .argument('<id>', 'workload id or key')
    .addOption(new Option('--stream <stream>', 'which stream').choices(['stdout', 'stderr']).default('stdout'))
    .option('--attempt <n>', 'attempt (default: the latest)', int('--attempt'))
    .option('-f, --follow', 'keep printing until the workload ends')
    .action(async (id: string, opts: { stream: string; attempt?: number; follow?: boolean }) => {
      const client = clientFrom(globals());
      let offset = 0;
      for (;;) {
        const slice = await client.request<{ data: string; nextOffset: number; complete: boolean; state: string }>(
          'GET',
          `/v1/workloads/${encodeURIComponent(id)}/logs`,
          {
            query: { stream: opts.stream, offset, attempt: opts.attempt, waitMs: opts.follow ? 20_000 : 0 },
            timeoutMs: 40_000,
            retry: { retryForMs: opts.follow ? 60_000 : 0 },
          },
        );
        if (slice.data) process.stdout.write(Buffer.from(slice.data, 'base64'));
        offset = slice.nextOffset;
        if (!opts.follow || slice.complete) break;
      }
    });
}
