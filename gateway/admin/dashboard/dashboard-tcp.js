// The TCP panel of the dashboard: tcp entry points and the connections, bytes and errors of their
// services, from /api/tcp every few seconds. Its own file so that it stays apart from the cards.
import { h } from './dashboard-format.js';
import { adminFetch } from './dashboard-token.js';

const REFRESH_MS = 2_000;

function bytesText(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function errorsText(errors) {
  const entries = Object.entries(errors).filter(([, count]) => count > 0);
  return entries.length === 0 ? '–' : entries.map(([errorClass, count]) => `${errorClass} ${count}`).join(', ');
}

/** The panel, made on first data so that a gateway without tcp entry points shows nothing. */
function panel() {
  let section = document.getElementById('tcp-panel');
  if (section) return section;
  section = h('section', { id: 'tcp-panel', class: 'card', 'aria-labelledby': 'tcp-heading', style: { 'margin-top': '16px', padding: '0 12px 12px' } }, h('h2', { id: 'tcp-heading' }, 'TCP'), h('div', { id: 'tcp-body' }));
  document.querySelector('.services-panel')?.append(section);
  return section;
}

function render({ entryPoints, services }) {
  if (entryPoints.length === 0) return;
  panel();
  const byService = new Map(services.map((service) => [service.name, service]));
  const rows = entryPoints.flatMap((entryPoint) =>
    [...(entryPoint.service === null ? [] : [entryPoint.service]), ...Object.values(entryPoint.sni)].map((name) => {
      const service = byService.get(name) ?? { open: 0, total: 0, bytesIn: 0, bytesOut: 0, errors: {} };
      return h(
        'tr',
        { 'data-service': name },
        h('td', {}, `${entryPoint.name} ${entryPoint.listen}${entryPoint.tls ? ' (TLS)' : entryPoint.passthrough ? ' (TLS passthrough)' : ''}`),
        h('td', { class: 'instance-id' }, name),
        h('td', {}, String(service.open)),
        h('td', {}, String(service.total)),
        h('td', {}, bytesText(service.bytesIn)),
        h('td', {}, bytesText(service.bytesOut)),
        h('td', {}, errorsText(service.errors)),
      );
    }),
  );
  const head = h('tr', {}, ...['entry point', 'service', 'open', 'total', 'bytes in', 'bytes out', 'errors'].map((label) => h('th', { scope: 'col' }, label)));
  document.getElementById('tcp-body').replaceChildren(h('table', {}, h('thead', {}, head), h('tbody', {}, ...rows)));
}

async function refresh() {
  try {
    const response = await adminFetch('api/tcp', { cache: 'no-store' });
    if (response.ok) render(await response.json());
  } catch {
    // dashboard.js reports a lost connection; this panel just keeps its last numbers.
  }
}

void refresh();
setInterval(() => void refresh(), REFRESH_MS);
