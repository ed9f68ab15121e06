// Circuit breaker badges on the service cards of the dashboard: /api/breakers polled every second,
// one badge per service (its worst breaker over every worker and route), re-attached whenever
// dashboard.js adds cards. Kept apart from dashboard.js so each can change on its own.
import { adminFetch } from './dashboard-token.js';

const POLL_MS = 1_000;
/** Worst first: a service shows the most alarming state any of its breakers is in. */
const RANK = { open: 2, 'half-open': 1, closed: 0 };
const TEXT = { open: 'breaker open', 'half-open': 'breaker half-open', closed: 'breaker closed' };

/** service → { state, detail } */
let badges = new Map();

async function poll() {
  try {
    const response = await adminFetch('api/breakers', { cache: 'no-store' });
    if (!response.ok) return;
    const { workers } = await response.json();
    const next = new Map();
    for (const worker of workers) {
      for (const breaker of worker.breakers) {
        const current = next.get(breaker.service);
        const where = [breaker.route ? `route ${breaker.route}` : '', worker.worker === null ? '' : `worker ${worker.worker}`].filter(Boolean).join(', ');
        if (!current || RANK[breaker.state] > RANK[current.state]) next.set(breaker.service, { state: breaker.state, detail: `${TEXT[breaker.state]}${where ? ` (${where})` : ''} since ${new Date(breaker.since).toLocaleTimeString()}` });
      }
    }
    badges = next;
    decorate();
  } catch {
    // The main dashboard reports connection problems; a missed poll only delays a badge.
  }
}

function decorate() {
  for (const card of document.querySelectorAll('article.card[data-service]')) {
    const badge = badges.get(card.dataset.service);
    let element = card.querySelector('.breaker-badge');
    if (!badge) {
      element?.remove();
      continue;
    }
    if (!element) {
      element = document.createElement('span');
      element.className = 'breaker-badge';
      (card.querySelector('header') ?? card).append(element);
    }
    element.dataset.state = badge.state;
    element.textContent = TEXT[badge.state];
    element.title = badge.detail;
  }
}

// dashboard.js adds a card for a new service (and keeps it, changed in place, while the service lasts): badge the new ones.
new MutationObserver(decorate).observe(document.getElementById('services'), { childList: true });
void poll();
setInterval(poll, POLL_MS);
