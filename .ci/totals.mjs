// Sums jest's JSON reports into the one line CI reads: "N passed, N failed".
// A failing step outside jest (type check, lint) counts as one failure so the line never says all is well
// when the test command did not pass.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir = 'reports', rcArg = '0'] = process.argv.slice(2);
let passed = 0;
let failed = 0;
let skipped = 0;
let files = [];
try {
  files = readdirSync(dir).filter((f) => f.endsWith('.json'));
} catch {
  // no reports: the command failed before any tier ran
}
for (const file of files) {
  const report = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  if (typeof report.numPassedTests !== 'number') continue; // not a test report (bench.json)
  passed += report.numPassedTests;
  failed += report.numFailedTests + (report.numRuntimeErrorTestSuites ?? 0);
  skipped += report.numPendingTests + (report.numTodoTests ?? 0);
}
// Every tier of the test command writes its report; one missing means that tier ended without saying how
// its tests went (a jest process that exited early once reported exit code 0 and wrote nothing).
const EXPECTED = ['unit.json', 'plugin.json', 'integration.json', 'integration-walkthrough.json'];
for (const name of EXPECTED.filter((f) => !files.includes(f))) {
  console.log(`totals: reports/${name} is missing: that tier did not report its tests; counted as a failure`);
  failed++;
}
if (Number(rcArg) !== 0 && failed === 0) failed = 1;
// Skipped tests (each prints why) on a line of their own: the last line is the totals alone.
if (skipped) console.log(`(${skipped} skipped)`);
console.log(`${passed} passed, ${failed} failed`);
