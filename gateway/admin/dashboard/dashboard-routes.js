// The routes panel of the dashboard (read-only): every route in matching order with where it comes
// from, from /api/routes joined with /api/store: a store route replaces the file's route of the same
// name, so a route whose name the store holds is the store's (shown with its stored revision).
import { h } from './dashboard-format.js';
import { adminFetch } from './dashboard-token.js';

const REFRESH_MS = 5_000;

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

function sourceText(route, stored) {
  const revision = route.name ? stored.get(route.name) : undefined;
  return revision === undefined ? 'file' : `store @ ${revision}`;
}

/** The panel, made on first data and placed after the services. */
function panel() {
  let section = document.getElementById('routes-panel');
  if (section) return section;
  section = h('section', { id: 'routes-panel', class: 'card routes-panel', 'aria-labelledby': 'routes-heading' }, h('h2', { id: 'routes-heading' }, 'Routes'), h('div', { id: 'routes-body' }));
  document.querySelector('.services-panel')?.append(section);
  return section;
}

function render(routes, stored) {
  panel();
  const rows = routes.map((route) =>
    h(
      'tr',
      { 'data-route': route.name ?? '', 'data-source': route.name && stored.has(route.name) ? 'store' : 'file' },
      h('td', {}, String(route.order)),
      h('td', {}, route.name ?? '(unnamed)'),
      h('td', { class: 'mono' }, matchText(route)),
      h('td', {}, route.namespace ? 'namespace' : (route.service ?? '')),
      h('td', {}, (route.middlewares ?? []).join(', ') || '–'),
      h('td', { class: 'source' }, sourceText(route, stored)),
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

/** Stored route name → revision; empty without a config store (409) or when the store does not answer. */
async function storedRoutes() {
  const response = await adminFetch('api/store', { cache: 'no-store' }).catch(() => undefined);
  if (!response?.ok) return new Map();
  const { objects } = await response.json();
  return new Map(objects.filter((object) => object.kind === 'routes').map((object) => [object.name, object.revision]));
}

async function refresh() {
  try {
    const [response, stored] = await Promise.all([adminFetch('api/routes', { cache: 'no-store' }), storedRoutes()]);
    if (!response.ok) return;
    const { routes } = await response.json();
    render(routes, stored);
  } catch {
    // The services panel reports an unreachable gateway; this panel keeps its last rows.
  }
}

void refresh();
setInterval(refresh, REFRESH_MS);
