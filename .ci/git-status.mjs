// After setup and every test: the checkout must be as it was cloned (issue: README's first command once
// rewrote package-lock.json). Writes a jest-shaped report (reports/git-status.json) that .ci/totals.mjs
// counts as one test, and prints what changed. Ignored files (node_modules, reports, cdktf.out, venvs) are
// fine; a modified tracked file or a new file that is not ignored fails it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir = 'reports'] = process.argv.slice(2);
const status = spawnSync('git', ['status', '--porcelain', '--untracked-files=all'], { encoding: 'utf8' });
const report = { numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, numTodoTests: 0 };
if (status.status !== 0) {
  console.log(`git status: not a git checkout, skipped (${status.stderr.trim()})`);
  report.numPendingTests = 1;
} else if (status.stdout.trim() === '') {
  console.log('git status: clean after setup and the tests');
  report.numPassedTests = 1;
} else {
  console.log(`git status: setup or the tests changed the checkout:\n${status.stdout}`);
  report.numFailedTests = 1;
}
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'git-status.json'), `${JSON.stringify(report)}\n`);
process.exit(report.numFailedTests);
