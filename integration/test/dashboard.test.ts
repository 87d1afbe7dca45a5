/// <reference lib="dom" />
// page.evaluate callbacks run in the browser: their DOM types (the rest of the repository has none).
/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core) against a real `airfleet serve`
 * (the compiled service and the built dashboard, as `npm run build` leaves them) and two real pull workers:
 * sign in, the workers and their heartbeat metrics, maintenance with a comment, a workload's whole life in
 * the list without a reload, its log followed while it runs, a cancel, drain and forget, every page at 1280
 * px and on a phone-sized screen in light and dark, an axe-core accessibility audit (WCAG 2.1 AA, contrast
 * included) of every page in both themes at both widths, the keyboard, and what a read-only token sees (no
 * actions) and gets when it forces a request (403). Screenshots of each page go to reports/dashboard/.
 */

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page, Request } from 'playwright-core';
import { ADMIN_TOKEN, type AirfleetProcess, ServiceProcess, waitFor } from '../src/airfleet-process.ts';
import { REPO } from '../src/airflow.ts';
import { launchChromium, screenshot } from '../src/browser.ts';

jest.setTimeout(4 * 60_000);

interface Workload {
  id: string;
  key: string;
  state: string;
  reason: string | null;
  workerName: string | null;
}
interface Worker {
  name: string;
  state: string;
  maintenanceComment: string | null;
  concurrency: number;
  metrics: { cpuPercent?: number; memoryTotalBytes?: number };
}

let service: ServiceProcess;
let browser: Browser;
let admin: BrowserContext;
let page: Page;
let readToken: string;
const workers = new Map<string, AirfleetProcess>();
let workDir: string;
const requests: string[] = [];

beforeAll(async () => {
  if (!existsSync(join(REPO, 'executor/ui/dist/index.html'))) {
    throw new Error('The dashboard is not built (executor/ui/dist): run `npm run build` first (.ci/run does).');
  }
  workDir = mkdtempSync(join(tmpdir(), 'airfleet-dashboard-'));
  [service, browser] = await Promise.all([
    ServiceProcess.start({ heartbeatIntervalMs: 500, heartbeatTimeoutMs: 4_000 }),
    launchChromium(),
  ]);
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: workDir };
  workers.set(
    'w-alpha',
    service.worker('w-alpha', ['--queues', 'alpha', '--concurrency', '2', '--work-dir', workDir], env),
  );
  workers.set(
    'w-beta',
    service.worker('w-beta', ['--queues', 'beta', '--concurrency', '3', '--work-dir', workDir], env),
  );
  readToken = (
    await service.client.request<{ token: string }>('POST', '/v1/tokens', {
      body: { name: 'dashboard-viewer', scopes: ['read'] },
    })
  ).token;
  // Both workers registered and heartbeating with their metrics.
  await waitFor(
    'two workers with heartbeat metrics',
    async () => {
      const { workers: list } = await service.client.request<{ workers: Worker[] }>('GET', '/v1/workers');
      return list.length === 2 && list.every((w) => w.state === 'idle' && w.metrics.memoryTotalBytes);
    },
    60_000,
    () => [...workers.values()].map((w) => w.tail(10)).join('\n'),
  );
  admin = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  page = await admin.newPage();
  page.on('request', (r: Request) =>
    requests.push(`${r.method()} ${new URL(r.url()).pathname}${new URL(r.url()).search}`),
  );
}, 3 * 60_000);

afterAll(async () => {
  await browser?.close();
  await Promise.all([...workers.values()].map((w) => w.kill('SIGTERM')));
  await service?.stop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

async function signIn(p: Page, token: string): Promise<void> {
  await p.goto(`${service.url}/ui/`);
  await p.getByLabel('API token').fill(token);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.getByRole('heading', { name: 'Workers', level: 1 }).waitFor();
}

async function submit(key: string, queue: string, script: string): Promise<Workload> {
  return service.client.request<Workload>('POST', '/v1/workloads', {
    body: { key, queue, command: ['sh', '-c', script] },
  });
}

async function workload(id: string): Promise<Workload> {
  return service.client.request<Workload>('GET', `/v1/workloads/${id}`);
}

const row = (p: Page, name: string) => p.getByRole('row', { name });

test('sign in with a token that no address, script or storage of the page holds afterwards', async () => {
  await page.goto(`${service.url}/ui/`);
  await page.getByLabel('API token').waitFor();
  await screenshot(page, 'login');
  await page.getByLabel('API token').fill('aft_nosuchtoken000_xxxxxxxxxxxxxxxxxxxxxxxx');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expectText(page.getByRole('alert'), /unknown or revoked/);
  await signIn(page, ADMIN_TOKEN);
  expect(page.url()).not.toContain('aft_');
  const visible = await page.evaluate(() => [
    document.cookie,
    JSON.stringify(localStorage),
    JSON.stringify(sessionStorage),
  ]);
  expect(visible.join(' ')).not.toContain('aft_'); // the cookie is HttpOnly
  const cookies = await admin.cookies();
  expect(cookies).toEqual([
    expect.objectContaining({ name: 'airfleet_session', httpOnly: true, sameSite: 'Strict', path: '/v1' }),
  ]);
  // A reload keeps the session.
  await page.reload();
  await page.getByRole('heading', { name: 'Workers', level: 1 }).waitFor();
});

test('the workers page shows both live workers with their slots and heartbeat metrics', async () => {
  for (const [name, slots] of [
    ['w-alpha', '0 / 2'],
    ['w-beta', '0 / 3'],
  ] as const) {
    const r = row(page, `worker ${name}`);
    await expectText(r, new RegExp(`${name}[\\s\\S]*idle[\\s\\S]*${slots.replace(/ /g, '\\s*')}`));
    await expectText(r.locator('[data-label="CPU"]'), /\d+%/);
    await expectText(r.locator('[data-label="Memory"]'), /\d.* GiB \/ .*GiB/);
    await expectText(r.locator('[data-label="Disk free"]'), /of \d/);
    await expectText(r.locator('[data-label="Load"]'), /\d+\.\d\d \d+\.\d\d \d+\.\d\d/);
    await expectText(r.locator('[data-label="Heartbeat"]'), /ago|just now/);
  }
  await expectText(page.locator('.summary'), /2 live workers, 0 of 5 slots in use/);
  await screenshot(page, 'workers');
  // Search and the state filter narrow the list, and live in the address.
  await page.getByLabel('Search').fill('beta');
  await until(
    'one worker row',
    () => page.getByRole('row', { name: /^worker / }).count(),
    (n) => n === 1,
  );
  expect(page.url()).toContain('q=beta');
  await page.getByLabel('Search').fill('');
  await page.getByLabel('State').selectOption('lost');
  await page.getByText('No worker matches these filters').waitFor();
  await page.getByRole('button', { name: 'Clear the filters' }).click();
  await until(
    'two worker rows',
    () => page.getByRole('row', { name: /^worker / }).count(),
    (n) => n === 2,
  );
});

test('maintenance with a comment: the worker’s state and comment change on the page', async () => {
  await page.getByRole('button', { name: 'Maintenance on for w-beta' }).click();
  const dialog = page.getByRole('dialog', { name: 'Maintenance for w-beta' });
  await dialog.getByLabel(/Comment/).fill('kernel update, back at 14:00');
  await dialog.getByRole('button', { name: 'Start maintenance' }).click();
  const r = row(page, 'worker w-beta');
  await expectText(r.locator('[data-label="State"]'), /maintenance mode[\s\S]*kernel update, back at 14:00/);
  await r.getByRole('button', { name: 'End maintenance for w-beta' }).waitFor();
  const w = await service.client.request<Worker>('GET', '/v1/workers/w-beta');
  expect(w).toMatchObject({ state: 'maintenance_mode', maintenanceComment: 'kernel update, back at 14:00' });
  await page.locator('.toast').filter({ hasText: 'Maintenance requested for w-beta' }).first().waitFor();
  await screenshot(page, 'workers-maintenance');
});

test('edit a worker’s concurrency and queues from the keyboard', async () => {
  const edit = page.getByRole('button', { name: 'Edit w-alpha' });
  await edit.focus();
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'Edit w-alpha' });
  await dialog.waitFor();
  // Escape closes the dialog and gives the focus back to the button that opened it.
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  expect(await edit.evaluate((el) => el === document.activeElement)).toBe(true);
  await page.keyboard.press('Enter');
  await dialog.getByLabel('Concurrency (slots)').fill('4');
  await dialog.getByLabel('Queues (comma-separated)').fill('alpha, alpha2');
  await dialog.getByLabel('Queues (comma-separated)').press('Enter');
  await expectText(row(page, 'worker w-alpha').locator('[data-label="Slots"]'), /0 \/ 4/);
  await expectText(row(page, 'worker w-alpha').locator('[data-label="Queues"]'), /alpha[\s\S]*alpha2/);
  expect(await service.client.request<Worker>('GET', '/v1/workers/w-alpha')).toMatchObject({ concurrency: 4 });
});

test('a workload goes queued → running → succeeded in the list, from the change feed, without a reload', async () => {
  await page.getByRole('link', { name: 'Workloads' }).click();
  await page.getByRole('heading', { name: 'Workloads', level: 1 }).waitFor();
  await page.locator('.live-on').waitFor();
  await page.evaluate(() => {
    (window as unknown as { marker: number }).marker = 17;
  });
  const listsBefore = requests.filter((r) => r.startsWith('GET /v1/workloads?')).length;
  // Queue gamma has no worker yet: the workload waits until w-alpha is given the queue.
  const w = await submit('dash-lifecycle', 'gamma', 'for i in 1 2 3 4; do echo "tick $i"; sleep 0.5; done');
  const r = page.locator('tr[data-workload="dash-lifecycle"]');
  await r.waitFor();
  // Record every state the row shows, as the page shows it.
  await r.evaluate((el) => {
    const seen: string[] = [];
    (window as unknown as { seen: string[] }).seen = seen;
    const read = () => {
      const s = el.querySelector('[data-state]')?.getAttribute('data-state');
      if (s && seen.at(-1) !== s) seen.push(s);
    };
    read();
    new MutationObserver(read).observe(el, { subtree: true, childList: true, attributes: true });
  });
  await expectText(r.locator('[data-label="State"]'), /queued/);
  await service.client.request('PATCH', '/v1/workers/w-alpha', { body: { addQueues: ['gamma'] } });
  await expectText(r.locator('[data-label="State"]'), /running/);
  await expectText(r.locator('[data-label="Worker"]'), /w-alpha/);
  await expectText(r.locator('[data-label="State"]'), /succeeded/, 30_000);
  await expectText(r.locator('[data-label="Outcome"]'), /exit 0/);
  const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
  expect(seen[0]).toBe('queued');
  expect(seen).toContain('running');
  expect(seen.at(-1)).toBe('succeeded');
  expect(seen.indexOf('running')).toBeLessThan(seen.indexOf('succeeded'));
  // The same page all along (no reload), and no list was fetched again: the feed drove every change.
  expect(await page.evaluate(() => (window as unknown as { marker: number }).marker)).toBe(17);
  expect(requests.filter((x) => x.startsWith('GET /v1/workloads?')).length).toBe(listsBefore);
  expect(requests.some((x) => x.startsWith('GET /v1/events?') && x.includes('waitMs='))).toBe(true);
  expect((await workload(w.id)).state).toBe('succeeded');
  await screenshot(page, 'workloads');
});

test('a workload’s page follows its stdout and stderr while it runs, with its attempts', async () => {
  const w = await submit(
    'dash-follow',
    'alpha',
    'echo "to stderr: ✓ ünïcødé" >&2; for i in $(seq 1 12); do echo "line $i"; sleep 0.5; done; echo "the end"',
  );
  await page.locator('tr[data-workload="dash-follow"] a').click();
  await page.getByRole('heading', { name: 'dash-follow', level: 1 }).waitFor();
  const stdout = page.getByRole('textbox', { name: 'stdout of attempt 1' });
  // Lines arrive while the task still runs...
  await until(
    'line 2 of stdout',
    () => stdout.inputValue(),
    (v) => /line 2\n/.test(v),
    30_000,
  );
  expect(await stdout.inputValue()).not.toContain('the end');
  expect((await workload(w.id)).state).toBe('running');
  await expectText(page.locator('.page-head [data-state]'), /running/);
  // ...and the rest until the end, with the state changing on the page by itself.
  await until(
    'the whole of stdout',
    () => stdout.inputValue(),
    (v) => /line 12\nthe end/.test(v),
    30_000,
  );
  await expectText(page.locator('.page-head [data-state]'), /succeeded/, 30_000);
  const stderr = page.getByRole('textbox', { name: 'stderr of attempt 1' });
  await until(
    'stderr',
    () => stderr.inputValue(),
    (v) => v === 'to stderr: ✓ ünïcødé\n',
  );
  await page.locator('.log-head').filter({ hasText: 'stdout' }).getByText('complete').waitFor();
  const attempts = page.locator('table').filter({ hasText: 'Attempt' });
  await expectText(attempts, /queued[\s\S]*pending[\s\S]*running[\s\S]*succeeded[\s\S]*exit 0/);
  await expectText(page.locator('.facts'), /w-alpha/);
  await screenshot(page, 'workload');
});

test('cancel a running workload from its page', async () => {
  const w = await submit('dash-cancel', 'alpha', 'echo started; sleep 120');
  await page.goto(`${service.url}/ui/#/workloads/${w.id}`);
  await expectText(page.locator('.page-head [data-state]'), /running/, 30_000);
  await page.getByRole('button', { name: 'Cancel…' }).click();
  await page
    .getByRole('dialog', { name: 'Cancel dash-cancel?' })
    .getByRole('button', { name: 'Cancel the workload' })
    .click();
  await expectText(page.locator('.page-head [data-state]'), /cancelled/, 30_000);
  await page.getByText(/Cancelled: cancelled/).waitFor();
  expect(await workload(w.id)).toMatchObject({ state: 'cancelled', reason: 'cancelled' });
  await until(
    'no cancel button',
    () => page.getByRole('button', { name: 'Cancel…' }).count(),
    (n) => n === 0,
  );
});

test('queues show depth, running slots and the oldest wait; pools say they are not configured', async () => {
  await submit('dash-waiting', 'delta', 'true'); // nobody serves delta
  const running = await submit('dash-busy', 'alpha', 'sleep 30');
  await waitFor('dash-busy to run', async () => (await workload(running.id)).state === 'running', 30_000);
  await page.getByRole('link', { name: 'Queues & pools' }).click();
  const delta = row(page, 'queue delta on pool');
  await expectText(delta.locator('[data-label="Queued"]'), /^1$/);
  await expectText(delta.locator('[data-label="Workers"]'), /^0$/);
  await expectText(delta.locator('[data-label="Oldest waiting"]'), /\d+(\.\d)? s|min/);
  await expectText(row(page, 'queue alpha on pool').locator('[data-label="Running"]'), /^1$/);
  await expectText(row(page, 'queue alpha on pool').locator('[data-label="Slots queued / running"]'), /0 \/ 1/);
  await page.getByText('Autoscaled pools are not configured on this service').waitFor();
  await screenshot(page, 'queues');
  await service.client.request('POST', `/v1/workloads/${running.id}/cancel`);
});

test('dispatch shows throughput and latency from the service’s histograms', async () => {
  await page.getByRole('link', { name: 'Dispatch' }).click();
  await page.getByRole('heading', { name: 'Dispatch', level: 1 }).waitFor();
  for (const name of ['Throughput, per second', 'Submit → start latency', /Submit → dispatch latency/]) {
    await page.getByRole('figure', { name }).locator('svg[role="img"]').waitFor();
  }
  const start = row(page, 'submit → start');
  await until(
    'four starts in the totals',
    async () => Number(await start.locator('[data-label="Workloads"]').textContent()),
    (n) => n >= 4,
    20_000,
  );
  await expectText(start.locator('[data-label="p99"]'), /ms|s/);
  await screenshot(page, 'dispatch');
});

test('a read-only token sees no action, and the API refuses what it forces (403)', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const viewer = await ctx.newPage();
  try {
    await signIn(viewer, readToken);
    await row(viewer, 'worker w-alpha').waitFor();
    await expectText(viewer.locator('.who'), /dashboard-viewer \(read\)/);
    expect(await viewer.getByRole('columnheader', { name: 'Actions' }).count()).toBe(0);
    for (const name of [/^Maintenance/, /^End maintenance/, /^Edit /, /^Drain /, /^Forget /]) {
      expect(await viewer.getByRole('button', { name }).count()).toBe(0);
    }
    await screenshot(viewer, 'workers-read-only');
    const open = await submit('dash-readonly', 'delta', 'true');
    await viewer.goto(`${service.url}/ui/#/workloads/${open.id}`);
    await viewer.getByRole('heading', { name: 'dash-readonly', level: 1 }).waitFor();
    await viewer.getByText('Why it waits').waitFor();
    expect(await viewer.getByRole('button', { name: /Cancel/ }).count()).toBe(0);
    // The same calls the buttons would make, sent by the page itself with its session cookie.
    const forced = await viewer.evaluate(async (id) => {
      const send = async (method: string, path: string, body?: unknown) =>
        (
          await fetch(path, {
            method,
            headers: { 'x-airfleet-csrf': '1', ...(body ? { 'content-type': 'application/json' } : {}) },
            ...(body ? { body: JSON.stringify(body) } : {}),
          })
        ).status;
      return [
        await send('POST', '/v1/workers/w-alpha/maintenance', { on: true, comment: 'forced' }),
        await send('PATCH', '/v1/workers/w-alpha', { concurrency: 1 }),
        await send('POST', '/v1/workers/w-alpha/drain'),
        await send('DELETE', '/v1/workers/w-alpha'),
        await send('POST', `/v1/workloads/${id}/cancel`),
        await send('GET', '/v1/workers'),
      ];
    }, open.id);
    expect(forced).toEqual([403, 403, 403, 403, 403, 200]);
    expect((await workload(open.id)).state).toBe('queued');
    expect((await service.client.request<Worker>('GET', '/v1/workers/w-alpha')).state).not.toMatch(/maintenance/);
  } finally {
    await ctx.close();
  }
});

test('on a phone-sized screen in the dark theme: every page fits the width', async () => {
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true });
  const phone = await ctx.newPage();
  try {
    await signIn(phone, ADMIN_TOKEN);
    const { workloads } = await service.client.request<{ workloads: Workload[] }>('GET', '/v1/workloads', {
      query: { limit: 100 },
    });
    const followed = workloads.find((w) => w.key === 'dash-follow')!;
    for (const [name, hash] of [
      ['workers', 'workers'],
      ['workloads', 'workloads'],
      ['workload', `workloads/${followed.id}`],
      ['queues', 'queues'],
      ['dispatch', 'dispatch'],
    ] as const) {
      await phone.goto(`${service.url}/ui/#/${hash}`);
      await phone.getByRole('heading', { level: 1 }).waitFor();
      await until(
        `${name} to load`,
        () => phone.locator('.loading').count(),
        (n) => n === 0,
      );
      // Charts and tables lay out after their data arrives: wait for the width to settle, fail if it never fits.
      const overflow = await until(
        `${name} to fit the width`,
        () => phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth),
        (n) => n === 0,
        5_000,
      ).catch(() => phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth));
      expect({ page: name, overflow }).toEqual({ page: name, overflow: 0 });
      await screenshot(phone, `${name}-narrow-dark`);
    }
    // The dark palette is in use (light text on a dark background).
    const colors = await phone.evaluate(() => [
      getComputedStyle(document.body).backgroundColor,
      getComputedStyle(document.body).color,
    ]);
    expect(colors).toEqual(['rgb(13, 17, 23)', 'rgb(230, 237, 243)']);
  } finally {
    await ctx.close();
  }
});

test('the keyboard reaches the content and every page from the top', async () => {
  await page.goto(`${service.url}/ui/#/workers`);
  await page.reload(); // a fresh document: the keyboard starts at the top
  await row(page, 'worker w-alpha').waitFor();
  await page.keyboard.press('Tab');
  expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
  await page.keyboard.press('Enter');
  expect(await page.evaluate(() => document.activeElement?.id)).toBe('main');
  await page.reload();
  await row(page, 'worker w-alpha').waitFor();
  const names: string[] = [];
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press('Tab');
    names.push(await page.evaluate(() => (document.activeElement as HTMLElement | null)?.textContent ?? ''));
  }
  expect(names).toEqual(expect.arrayContaining(['Workers', 'Queues & pools', 'Workloads', 'Dispatch']));
  await page.getByRole('link', { name: 'Dispatch' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Dispatch', level: 1 }).waitFor();
  expect(await page.evaluate(() => document.activeElement?.id)).toBe('main'); // focus moves to the new page
});

const AXE_SOURCE = readFileSync(join(REPO, 'node_modules/axe-core/axe.min.js'), 'utf8');

/** axe-core's WCAG 2 A/AA rules run in the page; serious and critical findings, each with where it is. */
async function audit(p: Page): Promise<string[]> {
  // Evaluated over the DevTools protocol: the page's own CSP (script-src 'self') rightly refuses an injected tag.
  await p.evaluate(AXE_SOURCE);
  return p.evaluate(async () => {
    interface AxeResult {
      violations: { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[];
    }
    const axe = (window as unknown as { axe: { run: (ctx: Document, o: object) => Promise<AxeResult> } }).axe;
    const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa'] } });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.help}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
}

test('every page passes an accessibility audit (axe, WCAG 2.1 AA) in light and dark, wide and narrow', async () => {
  const { workloads } = await service.client.request<{ workloads: Workload[] }>('GET', '/v1/workloads', {
    query: { limit: 100 },
  });
  // The followed workload of the earlier test has both streams; run alone (-t), the suite makes one.
  const one =
    workloads.find((w) => w.key === 'dash-follow') ??
    (await submit('dash-audit', 'alpha', 'echo out; echo err >&2; exit 3'));
  const findings: string[] = [];
  for (const colorScheme of ['light', 'dark'] as const) {
    for (const width of [1280, 390]) {
      const ctx = await browser.newContext({ viewport: { width, height: 900 }, colorScheme });
      const p = await ctx.newPage();
      try {
        await p.goto(`${service.url}/ui/`);
        await p.getByLabel('API token').waitFor();
        for (const f of await audit(p)) findings.push(`login ${colorScheme} ${width}px: ${f}`);
        await signIn(p, ADMIN_TOKEN);
        for (const hash of ['workers', 'queues', 'workloads', `workloads/${one.id}`, 'dispatch']) {
          await p.goto(`${service.url}/ui/#/${hash}`);
          await p.getByRole('heading', { level: 1 }).waitFor();
          await until(
            `${hash} to load`,
            () => p.locator('.loading').count(),
            (n) => n === 0,
          );
          for (const f of await audit(p)) findings.push(`${hash} ${colorScheme} ${width}px: ${f}`);
        }
        if (width === 1280) await screenshot(p, `workers-wide-${colorScheme}`);
      } finally {
        await ctx.close();
      }
    }
  }
  expect(findings).toEqual([]);
});

test('drain a worker: it finishes, leaves, shows offline, and can then be forgotten', async () => {
  await page.goto(`${service.url}/ui/#/workers`);
  await page.getByRole('button', { name: 'Drain w-beta' }).click();
  await page
    .getByRole('dialog', { name: 'Drain w-beta?' })
    .getByRole('button', { name: 'Drain and stop the worker' })
    .click();
  // The worker process itself stops (the service asked it to), and the page shows it offline.
  expect(await workers.get('w-beta')!.exited).toBe(0);
  const r = row(page, 'worker w-beta');
  await expectText(r.locator('[data-label="State"]'), /offline/, 30_000);
  await r.getByRole('button', { name: 'Forget w-beta' }).click();
  await page.getByRole('dialog', { name: 'Forget w-beta?' }).getByRole('button', { name: 'Forget the worker' }).click();
  await r.waitFor({ state: 'detached' });
  const { workers: left } = await service.client.request<{ workers: Worker[] }>('GET', '/v1/workers');
  expect(left.map((w) => w.name)).toEqual(['w-alpha']);
});

/** Reads until the value passes (the page updates by itself; nothing here reloads it); fails with the last one. */
async function until<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let error: unknown;
  for (;;) {
    try {
      last = await read();
      if (ok(last)) return last;
    } catch (e) {
      error = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)}${error ? ` (${(error as Error).message})` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until a locator's text matches. */
async function expectText(locator: ReturnType<Page['locator']>, pattern: RegExp, timeoutMs = 15_000): Promise<void> {
  await until(
    `text matching ${pattern}`,
    async () => ((await locator.first().textContent({ timeout: 2_000 })) ?? '').trim(),
    (t) => pattern.test(t),
    timeoutMs,
  );
}
