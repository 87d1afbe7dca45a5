#!/usr/bin/env bash
# The integration tier (`npm run test:integration`), in two jest processes at once:
# - the deploy walkthrough (integration/test/deploy-walkthrough.test.ts): Terraform against moto, most of
#   its ~8 minutes spent waiting on the AWS provider's fixed polling intervals;
# - every other suite, in band, in the order of integration/src/sequencer.cjs: those that only wait on their
#   own deadlines first (they run beside the walkthrough), those that judge timing afterwards.
# Each writes its own jest report (reports/integration*.json, summed by .ci/totals.mjs). The walkthrough's
# output is kept in reports/deploy-walkthrough.log and printed once it ends, so the two do not interleave.
# Either failing fails the tier. Arguments go to both (e.g. --verbose); to run one suite, call jest directly
# (README, "Tests").
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mkdir -p reports
export NODE_OPTIONS=--experimental-vm-modules
# --forceExit: a suite that leaves a handle open would otherwise keep jest alive after its last test, and CI
# would wait out its time limit with every test passed; global-teardown.ts names what was left open.
jest=(node_modules/.bin/jest --selectProjects integration --runInBand --forceExit)

"${jest[@]}" --testPathPatterns 'integration/test/deploy-walkthrough\.test\.ts' --json \
  --outputFile=reports/integration-walkthrough.json "$@" >reports/deploy-walkthrough.log 2>&1 &
walkthrough=$!
echo "test:integration: the deploy walkthrough runs beside the other suites (pid $walkthrough, output in reports/deploy-walkthrough.log)"

"${jest[@]}" --testPathIgnorePatterns 'integration/test/deploy-walkthrough\.test\.ts' --json \
  --outputFile=reports/integration.json "$@"
rest=$?

if kill -0 "$walkthrough" 2>/dev/null; then echo "test:integration: waiting for the deploy walkthrough"; fi
wait "$walkthrough"
walk=$?
echo
echo "==== the deploy walkthrough (exit $walk) ===="
cat reports/deploy-walkthrough.log
# A jest that ends without its report did not finish its run, whatever its exit code says.
for report in reports/integration.json reports/integration-walkthrough.json; do
  [ -s "$report" ] || { echo "test:integration: $report was not written: the run did not finish"; rest=1; }
done
[ "$rest" -eq 0 ] && [ "$walk" -eq 0 ]
