// The peers panel of the dashboard: the gateways sharing this one's config store, with the store
// revision each applied, from /api/peers every few seconds. A gateway without a config store has no
// /api/peers (404) and shows nothing.
import { h } from './dashboard-format.js';
import { adminFetch } from './dashboard-token.js';

const REFRESH_MS = 2_000;

/** The panel, made on first data, at the top of the events column. */
function panel() {
  let section = document.getElementById('peers-panel');
  if (section) return section;
  section = h('section', { id: 'peers-panel', class: 'peers', 'aria-labelledby': 'peers-heading' }, h('h2', { id: 'peers-heading' }, 'Gateways'), h('div', { id: 'peers-body' }));
  document.querySelector('.events-panel')?.prepend(section);
  return section;
}

function render({ newestRevision, peers }) {
  panel();
  const rows = peers.map((peer) =>
    h(
      'tr',
      { 'data-peer': peer.id, 'data-lagging': String(peer.lagging) },
      h('td', { class: 'instance-id' }, `${peer.id}${peer.self ? ' (this one)' : ''}`),
      h('td', {}, peer.admin ?? '–'),
      h('td', {}, peer.version),
      h('td', {}, peer.revision ?? '–'),
      h('td', {}, peer.lagging ? `lagging since ${new Date(peer.behindSince).toLocaleTimeString()}` : 'in step'),
    ),
  );
  const head = h('tr', {}, ...['gateway', 'admin', 'version', 'revision', 'state'].map((label) => h('th', { scope: 'col' }, label)));
  const caption = h('caption', {}, `${peers.length} gateway${peers.length === 1 ? '' : 's'}; newest applied revision ${newestRevision ?? 'none yet'}`);
  document.getElementById('peers-body').replaceChildren(h('table', {}, caption, h('thead', {}, head), h('tbody', {}, ...rows)));
}

let stopped = false;
async function refresh() {
  if (stopped) return;
  try {
    const response = await adminFetch('api/peers', { cache: 'no-store' });
    if (response.status === 404) stopped = true;
    else if (response.ok) render(await response.json());
  } catch {
    // dashboard.js reports a lost connection; this panel keeps its last list.
  }
}

void refresh();
setInterval(() => void refresh(), REFRESH_MS);
