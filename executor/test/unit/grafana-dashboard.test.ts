/**
 * The Grafana dashboard (executor/grafana/airfleet-dashboard.json) queries only what the service exports:
 * every metric name in every expression is in the service's own Prometheus registry, with the labels the
 * queries filter and group on; panels fit Grafana's 24-column grid with unique ids; the data source is the
 * dashboard's variable, so an import asks for it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutorService } from '../../src/service/executor-service.ts';
import { openTestService } from '../support/service.ts';

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { uid: string };
  targets?: Array<{ expr: string }>;
}

const dashboard = JSON.parse(readFileSync(join(__dirname, '../../grafana/airfleet-dashboard.json'), 'utf8')) as {
  panels: Panel[];
  templating: { list: Array<{ name: string; definition?: string }> };
};
let service: ExecutorService;

beforeAll(async () => {
  service = await openTestService();
});
afterAll(async () => service?.close());

test('every expression names metrics and labels the service exports', () => {
  const exported = new Map(
    service.metrics.registry
      .getMetricsAsArray()
      .map((m) => [m.name, new Set([...((m as unknown as { labelNames: string[] }).labelNames ?? []), 'le'])]),
  );
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  expect(exprs.length).toBeGreaterThan(10);
  for (const expr of [...exprs, ...dashboard.templating.list.map((v) => v.definition ?? '')]) {
    for (const [, metric, selector] of expr.matchAll(/\b(airfleet_[a-z_]+)(\{[^}]*\})?/g)) {
      const base = metric!.replace(/_(bucket|sum|count)$/, '');
      expect({ expr, metric: base, exported: exported.has(base) }).toEqual({ expr, metric: base, exported: true });
      for (const [, label] of (selector ?? '').matchAll(/([a-z_]+)\s*(?:=~|!~|!=|=)/g)) {
        expect({ metric: base, label, known: exported.get(base)!.has(label!) }).toMatchObject({ known: true });
      }
    }
    for (const [, labels] of expr.matchAll(/by \(([^)]*)\)/g)) {
      const metric = /airfleet_[a-z_]+/.exec(expr)![0].replace(/_(bucket|sum|count)$/, '');
      for (const label of labels!.split(',').map((l) => l.trim())) {
        expect({ metric, label, known: exported.get(metric)!.has(label) }).toMatchObject({ known: true });
      }
    }
  }
});

test('panels fit the grid, have unique ids, and use the data source variable', () => {
  const ids = dashboard.panels.map((p) => p.id);
  expect(new Set(ids).size).toBe(ids.length);
  for (const p of dashboard.panels) {
    expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template literal
    if (p.type !== 'row') expect(p.datasource?.uid).toBe('${datasource}');
  }
  expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'queue']);
});
