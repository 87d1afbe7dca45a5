import type { Command } from 'commander';
import { newSecret } from '../../store/tokens.ts';
import { clientFrom, type GlobalOptions } from '../context.ts';
import { print, table } from '../output.ts';
import { list } from '../parse.ts';

/** `airfleet token create|list|revoke|generate`. */
export function tokenCommand(program: Command, globals: () => GlobalOptions): void {
  const token = program.command('token').description('API tokens');
  token
    .command('create')
    .description('create a token (printed once; only its hash is stored)')
    .requiredOption('--name <name>', 'what it is for')
    .option('--scopes <a,b>', 'submit, read, admin, enroll', list, ['submit', 'read'])
    .option('--queues <a,b>', 'enroll tokens only: the queues the workers it registers may serve', list)
    .action(async (opts: { name: string; scopes: string[]; queues?: string[] }) => {
      const g = globals();
      const created = await clientFrom(g).request<{ token: string; id: string }>('POST', '/v1/tokens', { body: opts });
      print(g.json, created, () => created.token);
    });
  token
    .command('list')
    .description('list tokens')
    .action(async () => {
      const g = globals();
      const result = await clientFrom(g).request<{
        tokens: Array<{ id: string; name: string; scopes: string[]; createdAt: string; revokedAt: string | null }>;
      }>('GET', '/v1/tokens');
      print(g.json, result, () =>
        table(
          ['id', 'name', 'scopes', 'created', 'revoked'],
          result.tokens.map((t) => [t.id, t.name, t.scopes.join(','), t.createdAt, t.revokedAt]),
        ),
      );
    });
  token
    .command('revoke')
    .argument('<id>', 'token id')
    .description('revoke a token')
    .action(async (id: string) => {
      await clientFrom(globals()).request('DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
    });
  token
    .command('generate')
    .description('print a new random token to hand to `serve` through AIRFLEET_ADMIN_TOKEN or AIRFLEET_ENROLL_TOKEN')
    .action(() => {
      process.stdout.write(
        `aft_${newSecret()
          .replace(/[^A-Za-z0-9]/g, '')
          .slice(0, 18)}_${newSecret()}\n`,
      );
    });
}
