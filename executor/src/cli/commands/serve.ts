import type { Command } from 'commander';
import { buildApi } from '../../api/server.ts';
import { reloadOnChange, tlsEnabled } from '../../api/tls.ts';
import { configFromEnv, parseServiceConfig, type ServiceConfig } from '../../config.ts';
import type { BackendName } from '../../domain/workload.ts';
import { ConfigError } from '../../errors.ts';
import { createLogger } from '../../lib/logging.ts';
import { ExecutorService } from '../../service/executor-service.ts';
import {
  SECRET_KEY_SECRET_ENV,
  secretKeyFromSecret,
  secretKeySecretArn,
  tokenSecretArns,
  tokensFromSecrets,
} from '../../service/token-secrets.ts';
import type { GlobalOptions } from '../context.ts';
import { int, list } from '../parse.ts';

/** `airfleet serve`: the executor service, on embedded PGlite or PostgreSQL. */
export function serveCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('serve')
    .description('run the executor service (embedded PGlite database unless --database-url is given)')
    .option('--database-url <url>', 'PostgreSQL URL (env AIRFLEET_DATABASE_URL)')
    .option('--host <host>', 'address to listen on (env AIRFLEET_HOST)', undefined)
    .option('--port <port>', 'port to listen on (env AIRFLEET_PORT; default 8470)', int('--port'))
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace')
    .option(
      '--backends <a,b>',
      'backends to run (env AIRFLEET_BACKENDS; default pool,local embedded, pool with PostgreSQL)',
      list,
    )
    .option('--local-concurrency <n>', 'most tasks the local backend runs at once', int('--local-concurrency'))
    .option('--check', 'validate the configuration (environment and options), print it without secrets, and exit')
    .action(
      async (opts: {
        databaseUrl?: string;
        host?: string;
        port?: number;
        logLevel?: string;
        backends?: string[];
        localConcurrency?: number;
        check?: boolean;
      }) => {
        const g = globals();
        const config = parseServiceConfig({
          ...configFromEnv(),
          ...(g.dataDir ? { dataDir: g.dataDir } : {}),
          ...(opts.databaseUrl ? { databaseUrl: opts.databaseUrl } : {}),
          ...(opts.host ? { host: opts.host } : {}),
          ...(opts.port !== undefined ? { port: opts.port } : {}),
          ...(opts.logLevel ? { logLevel: opts.logLevel as 'info' } : {}),
          ...(opts.backends ? { backends: opts.backends as BackendName[] } : {}),
          ...(opts.localConcurrency !== undefined ? { localConcurrency: opts.localConcurrency } : {}),
        });
        const secretArns = tokenSecretArns();
        const keyArn = secretKeySecretArn();
        if (keyArn && (config.secretKey || config.secretKeyFile)) {
          throw new ConfigError(
            `${SECRET_KEY_SECRET_ENV} and AIRFLEET_SECRET_KEY(_FILE) are both set: keep one source of the secretEnv key`,
          );
        }
        if (opts.check) {
          process.stdout.write(
            `${JSON.stringify({ ...describeConfig(config), tokenSecrets: secretArns, secretKeySecret: keyArn ?? null })}\n`,
          );
          return;
        }
        const logger = createLogger(config.logLevel);
        // One Secrets Manager client for the tokens and the key, made only when one of them is configured.
        const secrets = Object.keys(secretArns).length > 0 || keyArn ? await secretsClient() : null;
        const fromSecrets =
          secrets && Object.keys(secretArns).length ? await tokensFromSecrets(secretArns, secrets, logger) : [];
        // The key sealing secretEnv, shared by every instance through its secret (filled on the first start).
        const secretKey = secrets && keyArn ? await secretKeyFromSecret(secrets, keyArn, logger) : config.secretKey;
        const service = await ExecutorService.open(
          {
            ...config,
            ...(secretKey ? { secretKey } : {}),
            bootstrapTokens: [...config.bootstrapTokens, ...fromSecrets],
          },
          logger,
        );
        const app = await buildApi(service, logger, { tls: config.tls });
        await app.listen({ host: config.host, port: config.port });
        const stopWatching = reloadOnChange(app.server as never, config.tls, logger);
        let closing = false;
        const close = async (signal: string) => {
          if (closing) return;
          closing = true;
          logger.info({ signal }, 'shutting down: no new leases or claims; peers or the successor take the work');
          // Stop handing out work first (parked polls answer now), then stop the HTTP server (it waits for the
          // requests under way), then the rest.
          stopWatching();
          await service.quiesce();
          await app.close();
          await service.close();
          process.exit(0);
        };
        process.on('SIGINT', () => void close('SIGINT'));
        process.on('SIGTERM', () => void close('SIGTERM'));
      },
    );
}

/** What `serve --check` prints: where the service would listen and what it would use, never a secret. */
export function describeConfig(config: ServiceConfig): Record<string, unknown> {
  let database: Record<string, unknown> | string = 'embedded';
  if (config.databaseUrl) {
    const url = new URL(config.databaseUrl);
    database = {
      at: `${url.protocol}//${url.hostname}${url.port ? `:${url.port}` : ''}${url.pathname}`,
      sslmode: url.searchParams.get('sslmode'),
      sslrootcert: url.searchParams.get('sslrootcert'),
      credentials: config.databaseSecretArn ?? (url.password ? 'in the URL' : 'none'),
    };
  }
  return {
    ok: true,
    listen: `${tlsEnabled(config.tls) ? 'https' : 'http'}://${config.host}:${config.port}`,
    clientCertificates: config.tls.clientCaFile ? 'required on /v1/worker/' : 'not asked',
    database,
    backends: config.backends ?? (config.databaseUrl ? ['pool'] : ['pool', 'local']),
    bootstrapTokens: config.bootstrapTokens.map((t) => t.name),
  };
}

/** Loaded only when a secret is configured: the SDK client costs memory a service without one should not pay. */
async function secretsClient() {
  const { SecretsManagerClient } = await import('@aws-sdk/client-secrets-manager');
  return new SecretsManagerClient({});
}
