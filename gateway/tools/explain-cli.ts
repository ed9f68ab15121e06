import { parseArgs } from 'node:util';
import type { ExplainView } from '../admin/explain-view.ts';

/** How long `switchboard explain` waits for the admin API before giving up. */
const EXPLAIN_TIMEOUT_MS = 10_000;

/**
 * `switchboard explain`: asks a running gateway's `GET /api/explain`. It asks the gateway rather
 * than computing from a configuration file because the answer depends on live state that only the
 * gateway holds: the instances the registries list now, their health, and the balancer's rotation.
 * Exit 0 when the request would be proxied, 1 when it would not (404, 503…), 2 on a usage or
 * admin API error.
 */
export async function explainCommand(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      admin: { type: 'string', short: 'a' },
      token: { type: 'string' },
      method: { type: 'string', short: 'X' },
      host: { type: 'string', short: 'H' },
      path: { type: 'string', short: 'p' },
      'entry-point': { type: 'string' },
      header: { type: 'string', multiple: true },
      json: { type: 'boolean' },
    },
  });
  if (!values.admin || !values.path) {
    err.write('switchboard explain: --admin <url> and --path <path> are required\n');
    return 2;
  }
  const url = new URL('/api/explain', values.admin);
  url.searchParams.set('method', values.method ?? 'GET');
  url.searchParams.set('path', values.path);
  if (values.host) url.searchParams.set('host', values.host);
  if (values['entry-point']) url.searchParams.set('entryPoint', values['entry-point']);
  for (const header of values.header ?? []) url.searchParams.append('header', header);
  const token = values.token ?? process.env.SWITCHBOARD_ADMIN_TOKEN;
  let response: Response;
  try {
    response = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(EXPLAIN_TIMEOUT_MS) });
  } catch (error) {
    err.write(`switchboard explain: cannot reach ${url.origin} (${(error as Error).message})\n`);
    return 2;
  }
  const body = (await response.json().catch(() => undefined)) as (ExplainView & { message?: string }) | undefined;
  if (!response.ok || !body) {
    err.write(`switchboard explain: the admin API answered ${response.status}${body?.message ? `: ${body.message}` : ''}\n`);
    return 2;
  }
  out.write(values.json ? `${JSON.stringify(body, null, 2)}\n` : formatExplanation(body));
  return body.outcome === 'proxy' ? 0 : 1;
}

/** The explanation as a few lines of text for a terminal. */
export function formatExplanation(view: ExplainView): string {
  const { routedPath } = view.request;
  // A gateway from before routedPath leaves it out.
  const routed = routedPath !== undefined && routedPath !== view.request.path ? `, routed as ${routedPath} (its rewrites)` : '';
  const lines = [`${view.request.method} ${view.request.host || '(no host)'} ${view.request.path}  [entry point ${view.request.entryPoint}${routed}]`];
  lines.push(view.route ? `route:      ${view.route.name}${view.route.namespace ? ' (namespace)' : ''} → service ${view.route.service}, upstream path ${view.route.upstreamPath}` : 'route:      none matches (404)');
  for (const miss of view.nearMisses) lines.push(`  not ${miss.name}: ${miss.reasons.join('; ')}`);
  lines.push(`middleware: ${view.middleware.map((layer) => (layer.kind === layer.name ? layer.name : `${layer.name} (${layer.kind})`)).join(' → ') || '(none)'}`);
  if (view.service) lines.push(`service:    ${view.service.name}, ${view.service.balancer}${view.service.panic ? ', PANIC (all instances get traffic)' : ''}${view.service.declared ? '' : ', not declared (defaults)'}`);
  for (const instance of view.instances) {
    lines.push(`  ${view.pick?.address === instance.address ? '→' : ' '} ${instance.id} ${instance.address} weight ${instance.effectiveWeight}/${instance.weight} ${instance.health.state}${instance.routable ? '' : ' (no traffic)'} in flight ${instance.inFlight}`);
  }
  lines.push(`outcome:    ${view.outcome}${view.pick ? ` → ${view.pick.id} (${view.pick.address})` : ''}`);
  for (const note of view.notes) lines.push(`note:       ${note}`);
  return `${lines.join('\n')}\n`;
}
