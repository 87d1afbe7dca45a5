import { Command, InvalidArgumentError } from 'commander';
import { ApiError, UnreachableError } from '../client/api-client.ts';
import { ConfigError } from '../errors.ts';
import { VERSION } from '../service/executor-service.ts';
import { cancelCommand } from './commands/cancel.ts';
import { databaseCommand } from './commands/database.ts';
import { logsCommand } from './commands/logs.ts';
import { maintenanceCommand } from './commands/maintenance.ts';
import { poolsCommand } from './commands/pools.ts';
import { queuesCommand } from './commands/queues.ts';
import { serveCommand } from './commands/serve.ts';
import { statusCommand } from './commands/status.ts';
import { submitCommand } from './commands/submit.ts';
import { tokenCommand } from './commands/token.ts';
import { workerCommand } from './commands/worker.ts';
import { workersCommand } from './commands/workers.ts';
import type { GlobalOptions } from './context.ts';

/** The `airfleet` command line: one module per command under cli/commands/. */
export function buildCli(): Command {
  const program = new Command('airfleet')
    .description('airfleet: run Airflow tasks on pull-worker pools, Nomad and AWS Batch')
    .version(VERSION)
    .option('--api-url <url>', 'executor service URL (env AIRFLEET_API_URL)', undefined)
    .option('--token <token>', 'API token (env AIRFLEET_TOKEN; default: <data-dir>/admin.token)')
    .option('--token-file <file>', 'a file holding the API token (env AIRFLEET_TOKEN_FILE)')
    .option('--data-dir <dir>', 'data directory of an embedded service (env AIRFLEET_DATA_DIR; default ./.airfleet)')
    .option('--json', 'print JSON instead of text')
    .showHelpAfterError();
  const globals = () => program.opts<GlobalOptions>();
  for (const command of [
    serveCommand,
    workerCommand,
    submitCommand,
    statusCommand,
    logsCommand,
    cancelCommand,
    workersCommand,
    maintenanceCommand,
    queuesCommand,
    poolsCommand,
    tokenCommand,
  ]) {
    command(program, globals);
  }
  databaseCommand(program);
  return program;
}

/** Runs the CLI; errors print one actionable line (no stack) and set a non-zero exit code. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (error) {
    if (error instanceof ApiError) {
      process.stderr.write(`airfleet: ${error.message} (HTTP ${error.status} ${error.code})\n`);
    } else if (
      error instanceof UnreachableError ||
      error instanceof ConfigError ||
      error instanceof InvalidArgumentError
    ) {
      process.stderr.write(`airfleet: ${error.message}\n`);
    } else {
      process.stderr.write(`airfleet: ${(error as Error).stack ?? String(error)}\n`);
    }
    process.exitCode = 2;
  }
}
