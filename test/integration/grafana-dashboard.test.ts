// The Grafana dashboard and Prometheus configuration of deploy/: they must query what the gateway
// really exports, and scrape it the way docker-compose.yml runs it.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../harness/admin-client.ts';
import { freePort, REPO_ROOT, sendRequest, startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';

const DASHBOARDS = join(REPO_ROOT, 'deploy/grafana/dashboards');

interface Panel {
  readonly type: string;
  readonly title: string;
  readonly targets?: readonly { readonly expr: string }[];
  readonly panels?: readonly Panel[];
}

/** Every PromQL expression of a dashboard: panel targets (rows included) and query variables. */
function queriesOf(dashboard: { panels: Panel[]; templating: { list: { query?: unknown; definition?: string }[] } }): string[] {
  const fromPanels = (panels: readonly Panel[]): string[] => panels.flatMap((panel) => [...(panel.targets ?? []).map((target) => target.expr), ...fromPanels(panel.panels ?? [])]);
  const fromVariables = dashboard.templating.list.flatMap((variable) => {
    const query = typeof variable.query === 'object' && variable.query !== null ? (variable.query as { query?: string }).query : undefined;
    return [query, variable.definition].filter((text): text is string => typeof text === 'string' && text.includes('('));
  });
  return [...fromPanels(dashboard.panels), ...fromVariables];
}

/** Metric names a PromQL expression reads; histogram series map to their family. */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b(switchboard_[a-z0-9_]+|nodejs_[a-z0-9_]+|process_[a-z0-9_]+)\b/g)].map((match) => match[1]!.replace(/_(bucket|sum|count)$/, ''));
}

describe('deploy/grafana and deploy/prometheus.yml', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    backend = await startBackend({ name: 'metrics-backend' });
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
accessLog: false
services:
  demo: { instances: ["127.0.0.1:${backend.port}"] }
  gone: { instances: ["127.0.0.1:${await freePort()}"], retries: { attempts: 1 } }
routes:
  - { name: demo, path: /demo, service: demo }
  - { name: gone, path: /gone, service: gone }
`);
    // Traffic that fills the request, latency and upstream error series.
    expect((await sendRequest(gateway.port, '/demo/x')).status).toBe(200);
    expect((await sendRequest(gateway.port, '/gone/x')).status).toBeGreaterThanOrEqual(500);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
  });

  it('holds dashboards that parse, each with panels that query something', () => {
    const files = readdirSync(DASHBOARDS).filter((file) => file.endsWith('.json'));
    expect(files).toEqual(['switchboard.json']);
    for (const file of files) {
      const dashboard = JSON.parse(readFileSync(join(DASHBOARDS, file), 'utf8')) as { uid: string; panels: Panel[]; templating: { list: [] } };
      expect(dashboard.uid).toBeTruthy();
      const graphs = dashboard.panels.filter((panel) => panel.type !== 'row');
      expect(graphs.length).toBeGreaterThan(8);
      for (const panel of graphs) expect(panel.targets?.length, `${panel.title} has queries`).toBeGreaterThan(0);
    }
  });

  it('queries only metric names that the running gateway exports on /metrics, and covers the issue list', async () => {
    const dashboard = JSON.parse(readFileSync(join(DASHBOARDS, 'switchboard.json'), 'utf8')) as Parameters<typeof queriesOf>[0];
    const queried = new Set(queriesOf(dashboard).flatMap(metricNames));
    // Polled only until the admin listener answers: a page that never parses fails at the deadline with the parse error.
    const exported = await waitFor(() => adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics(), { timeoutMs: 10_000, message: 'a parsable /metrics' });
    const missing = [...queried].filter((name) => !exported.has(name));
    expect(missing, `queried by the dashboard but absent from /metrics (exported: ${[...exported.keys()].filter((name) => name.startsWith('switchboard_')).join(', ')})`).toEqual([]);
    // Requests, latency quantiles, upstream errors by class, instances by state, registry staleness, reloads;
    // breakers, rate limits, tcp entry points and gRPC calls.
    for (const name of [
      'switchboard_requests_total',
      'switchboard_request_duration_seconds',
      'switchboard_upstream_errors_total',
      'switchboard_instances',
      'switchboard_provider_stale',
      'switchboard_config_reloads_total',
      'switchboard_circuit_breaker_state',
      'switchboard_circuit_breaker_transitions_total',
      'switchboard_traffic_rejections_total',
      'switchboard_rate_limit_fallback_total',
      'switchboard_tcp_connections_open',
      'switchboard_tcp_bytes_total',
      'switchboard_tcp_errors_total',
      'switchboard_grpc_calls_total',
    ]) {
      expect(queried, name).toContain(name);
    }
    expect(queriesOf(dashboard).join('\n')).toContain('histogram_quantile(0.99');
  });

  it('scrapes the compose gateway on its admin port with the token that gateway requires', () => {
    const prometheus = parse(readFileSync(join(REPO_ROOT, 'deploy/prometheus.yml'), 'utf8')) as {
      scrape_configs: { job_name: string; metrics_path: string; authorization: { credentials: string }; static_configs: { targets: string[] }[] }[];
    };
    const gatewayConfig = parse(readFileSync(join(REPO_ROOT, 'deploy/gateway.compose.yaml'), 'utf8')) as { admin: { listen: string; token: string } };
    const [job] = prometheus.scrape_configs;
    expect(job!.metrics_path).toBe('/metrics');
    expect(job!.authorization.credentials).toBe(gatewayConfig.admin.token);
    expect(job!.static_configs[0]!.targets).toEqual([`gateway:${gatewayConfig.admin.listen.split(':').at(-1)}`]);
    const compose = parse(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, { volumes?: string[] }> };
    expect(compose.services.prometheus?.volumes).toContain('./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro');
    expect(compose.services.grafana?.volumes).toEqual(expect.arrayContaining(['./deploy/grafana/provisioning:/etc/grafana/provisioning:ro', './deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro']));
  });
});
