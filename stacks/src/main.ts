// Entry point of the CDKTF app (cdktf.json: `node stacks/src/main.ts`). Node runs the TypeScript directly.
//   AIRFLEET_ENVIRONMENTS=staging node stacks/src/main.ts   synthesizes one environment (all are validated)
import { buildApp, UnknownEnvironmentError } from './app.ts';
import { ConfigError } from './config/validate.ts';

// cdktf 0.21 calls the deprecated util.isArray (DEP0044) for every output, and `cdktf synth` reports any
// stderr line of the app as an ERROR. Drop that one warning; every other warning still shows.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const [typeOrOptions, code] = rest;
  const codeOf =
    typeof typeOrOptions === 'object' && typeOrOptions !== null ? (typeOrOptions as { code?: string }).code : code;
  if (codeOf === 'DEP0044') return;
  (emitWarning as (...args: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;

const only = process.env.AIRFLEET_ENVIRONMENTS?.split(',')
  .map((name) => name.trim())
  .filter(Boolean);

try {
  const { app } = buildApp(only && only.length > 0 ? { only } : {});
  app.synth();
} catch (error) {
  if (error instanceof ConfigError || error instanceof UnknownEnvironmentError) {
    console.error(error.message);
    process.exit(1);
  }
  throw error;
}
