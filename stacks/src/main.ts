// Entry point of the CDKTF app (cdktf.json: `node stacks/src/main.ts`). Node runs the TypeScript directly.
//   AIRFLEET_ENVIRONMENTS=staging node stacks/src/main.ts   synthesizes one environment (all are validated)
import { buildApp } from './app.ts';
import { ConfigError } from './config/validate.ts';

const only = process.env.AIRFLEET_ENVIRONMENTS?.split(',')
  .map((name) => name.trim())
  .filter(Boolean);

try {
  const { app } = buildApp(only && only.length > 0 ? { only } : {});
  app.synth();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(1);
  }
  throw error;
}
