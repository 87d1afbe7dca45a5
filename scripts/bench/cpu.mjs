// CPU time of process trees, from /proc: what a server (its process and every descendant, live or reaped)
// has used, so a phase's cost per job is the difference of two samples divided by its jobs.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

function stat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: split after its closing parenthesis.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) };
  } catch {
    return null; // exited meanwhile
  }
}

/** CPU milliseconds used so far by the trees rooted at `roots` (a process and all its descendants). */
export function treeCpuMs(roots) {
  const all = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = stat(name);
    if (s) all.set(Number(name), s);
  }
  const children = new Map();
  for (const [pid, s] of all) {
    if (!children.has(s.ppid)) children.set(s.ppid, []);
    children.get(s.ppid).push(pid);
  }
  let ticks = 0;
  const seen = new Set();
  const stack = roots.filter((p) => all.has(p));
  while (stack.length) {
    const pid = stack.pop();
    if (seen.has(pid)) continue;
    seen.add(pid);
    ticks += all.get(pid).ticks;
    stack.push(...(children.get(pid) ?? []));
  }
  return (ticks * 1000) / TICKS;
}

/** The host pid of a container's first process (its processes are that one's descendants). */
export function containerPid(containerId) {
  return Number(execFileSync('docker', ['inspect', '-f', '{{.State.Pid}}', containerId], { encoding: 'utf8' }).trim());
}

/** Samples of named groups of process trees; `since(a, b)` gives each group's CPU ms between two samples. */
export class CpuMeter {
  constructor(groups) {
    this.groups = groups; // { name: () => pid[] }
    this.samples = new Map();
  }

  sample(label) {
    const values = {};
    for (const [name, pids] of Object.entries(this.groups)) values[name] = treeCpuMs(pids());
    this.samples.set(label, { at: performance.now(), values });
  }

  /** CPU ms of each group between samples `a` and `b`, and the wall time between them. */
  between(a, b) {
    const x = this.samples.get(a);
    const y = this.samples.get(b);
    if (!x || !y) throw new Error(`no CPU sample named ${x ? b : a}`);
    const out = { wallMs: y.at - x.at };
    for (const name of Object.keys(y.values)) out[name] = y.values[name] - (x.values[name] ?? 0);
    return out;
  }
}
