// The routes panel of the dashboard (read-only): every route in matching order with where it comes
// from (the configuration file or the config store, with the stored revision), from /api/routes.
import { h } from './dashboard-format.js';

const REFRESH_MS = 5_000;

/** The token dashboard.js keeps for this tab (it reads `?token=` first: module scripts run in order). */
function authHeaders() {
  const token = sessionStorage.getItem('switchboard-admin-token');
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** What a route matches, in one line: host, methods, path or regex, gRPC service. */
function matchText(route) {
  const parts = [];
  if (route.host) parts.push(`host ${Array.isArray(route.host) ? route.host.join(', ') : typeof route.host === 'object' ? JSON.stringify(route.host) : route.host}`);
  if (route.methods) parts.push(route.methods.join(','));
  if (route.path) parts.push(route.path);
  if (route.pathRegex) parts.push(`~ ${route.pathRegex}`);
  if (route.grpcService) parts.push(`gRPC ${route.grpcService}`);
  return parts.join(' ') || '(everything)';
}

function sourceText(route) {
  const source = route.source ?? 'file';
  const revision = route.storeRevision ?? route.revision;
  return source === 'store' && revision ? `store @ ${revision}` : source;
}

/** The panel, made on first data and placed after the services. */
function panel() {
  let section = document.getElementById('routes-panel');
  if (section) return section;
  section = h('section', { id: 'routes-panel', class: 'card routes-panel', 'aria-labelledby': 'routes-heading' }, h('h2', { id: 'routes-heading' }, 'Routes'), h('div', { id: 'routes-body' }));
  document.querySelector('.services-panel')?.append(section);
  return section;
}

function render(routes) {
  panel();
  const rows = routes.map((route) =>
    h(
      'tr',
      { 'data-route': route.name ?? '', 'data-source': route.source ?? 'file' },
      h('td', {}, String(route.order)),
      h('td', {}, route.name ?? '(unnamed)'),
      h('td', { class: 'mono' }, matchText(route)),
      h('td', {}, route.namespace ? 'namespace' : (route.service ?? '')),
      h('td', {}, (route.middlewares ?? []).join(', ') || '–'),
      h('td', { class: 'source' }, sourceText(route)),
    ),
  );
  const table = h(
    'table',
    { class: 'routes' },
    h('thead', {}, h('tr', {}, ...['#', 'name', 'match', 'service', 'middleware', 'source'].map((title) => h('th', { scope: 'col' }, title)))),
    h('tbody', {}, ...(rows.length ? rows : [h('tr', {}, h('td', { colspan: '6' }, 'No routes.'))])),
  );
  document.getElementById('routes-body').replaceChildren(table);
}

async function refresh() {
  try {
    const response = await fetch('api/routes', { headers: authHeaders(), cache: 'no-store' });
    if (!response.ok) return;
    const { routes } = await response.json();
    render(routes);
  } catch {
    // The services panel reports an unreachable gateway; this panel keeps its last rows.
  }
}

void refresh();
setInterval(refresh, REFRESH_MS);
