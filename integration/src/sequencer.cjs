// The integration tier's order (jest.config.js): the suites that only wait on their own deadlines run
// first, while scripts/test-integration.sh runs the deploy walkthrough (Terraform against moto, ~8 minutes)
// beside them; the suites that judge timing (kills, outages, shutdowns, autoscaling, the Airflow
// scheduler) run after it, on a machine with nothing else going on. Plain CommonJS: jest loads it
// untransformed.
const Sequencer = require('@jest/test-sequencer').default;

const FIRST = [
  'stacks-terraform',
  'stack-command-lines',
  'executor-image',
  'postgres',
  'executor-postgres',
  'token-secrets',
  'batch-moto',
  'autoscale-aws-moto',
  'as-deployed',
  'as-deployed-nomad',
  'api-fuzz',
  'worker-docker-runtime',
  'worker-client-cert',
];
const rank = (path) => {
  const name = path.replace(/^.*\//, '').replace(/\.test\.ts$/, '');
  const i = FIRST.indexOf(name);
  return i === -1 ? FIRST.length : i;
};

class IntegrationSequencer extends Sequencer {
  sort(tests) {
    if (!tests.some((t) => t.path.includes('/integration/test/'))) return super.sort(tests);
    return [...tests].sort((a, b) => rank(a.path) - rank(b.path) || a.path.localeCompare(b.path));
  }
}

module.exports = IntegrationSequencer;
