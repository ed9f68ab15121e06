// The Switchboard dashboard: one card per service, live from /api/events (Server-Sent Events), with
// /api/services fetched every few seconds to turn request counters into rates. No framework, no build.
import { ServiceCard } from './dashboard-cards.js';
import { events } from './dashboard-events.js';
import { describeEvent, h, placeChildren } from './dashboard-format.js';
import { adminFetch, tokenEvents } from './dashboard-token.js';

const REFRESH_MS = 2_000;
/**
 * How long the gateway may take to start its answer. A host that is down or cut off (or a frozen
 * process) sends no refusal: without a bound a fetch waits minutes for the operating system to give
 * up, and the page goes on showing its cards as live. The body itself is not bounded: a large answer
 * over a slow link must not read as an outage.
 */
const ANSWER_TIMEOUT_MS = 3_000;
const EVENT_LOG_SIZE = 100;
/** Events arrive in bursts (a deploy); one fetch after the burst settles the whole picture. */
const SETTLE_MS = 150;

const services = new Map();
/**
 * Service name → its card (dashboard-cards.js), kept while the service is listed and changed in
 * place: rebuilding every card on every fetch and event made the browser restyle and lay out the
 * whole page each time, which froze the page for seconds with a thousand services.
 */
const cards = new Map();
let renderQueued = false;
/** `service|address` → { requests, at } from the previous fetch, and the rate derived from it. */
const samples = new Map();
const rates = new Map();
let settleTimer;
/** When /api/services last answered: what the cards show while the gateway does not. */
let lastAnswerAt;
/**
 * Refreshes overlap while the gateway is slow (one each `REFRESH_MS`, one after each burst of
 * events): only the newest that ended counts, so that an older one's failure or answer, arriving
 * late, neither puts back the notice nor older cards over a newer answer.
 */
let refreshesStarted = 0;
let newestEnded = 0;

const $ = (id) => document.getElementById(id);

/**
 * `no-cache` revalidates every time: an answer with an ETag (`/api/services`) is asked for again with
 * `If-None-Match`, and a 304 (nothing changed) gives back the stored body without the gateway
 * building or sending it again. Answers marked `no-store` are never stored, so are fetched in full.
 */
async function getJson(path) {
  const answer = new AbortController();
  const timer = setTimeout(() => answer.abort(new DOMException(`no answer within ${ANSWER_TIMEOUT_MS / 1_000} s`, 'TimeoutError')), ANSWER_TIMEOUT_MS);
  let response;
  try {
    response = await adminFetch(path, { cache: 'no-cache', signal: answer.signal });
  } finally {
    clearTimeout(timer);
  }
  // dashboard-token.js has forgotten the refused token and asks for one: its form says why.
  if (response.status === 401) throw Object.assign(new Error(`${path} answered 401`), { name: 'UnauthorizedError' });
  if (!response.ok) throw new Error(`${path} answered ${response.status}`);
  return response.json();
}

async function refresh() {
  const started = ++refreshesStarted;
  try {
    const [{ services: list }, { registries }] = await Promise.all([getJson('api/services'), getJson('api/registries')]);
    if (started < newestEnded) return;
    newestEnded = started;
    const now = performance.now();
    const sampled = new Set();
    services.clear();
    for (const service of list) {
      services.set(service.name, service);
      for (const instance of service.instances) {
        const key = `${service.name}|${instance.address}`;
        sampled.add(key);
        sample(key, instance.requests, now);
      }
    }
    forgetOthers(sampled);
    lastAnswerAt = new Date();
    delete $('services').dataset.outdated;
    showNotice(list.length === 0 ? 'No services yet: register a backend with switchboard-agent, or declare one in the configuration.' : '');
    renderRegistries(registries);
    renderServices();
  } catch (error) {
    if (started < newestEnded) return;
    newestEnded = started;
    // A fetch that never got an answer says only "Failed to fetch" (refused) or nothing for minutes (a host that is down): name what is down, and that the cards are as of the last answer.
    const unreachable = error instanceof TypeError || error.name === 'TimeoutError' || error.name === 'AbortError';
    const since = lastAnswerAt ? ` The cards show the state as of ${lastAnswerAt.toLocaleTimeString()}.` : '';
    if (error.name === 'UnauthorizedError') showNotice(since.trim());
    else showNotice(unreachable ? `The gateway's admin API does not answer (${error.message}); retrying every ${REFRESH_MS / 1_000} s.${since}` : `${error.message}${since}`);
    $('services').dataset.outdated = 'true';
  }
}

function sample(key, requests, now) {
  const previous = samples.get(key);
  if (previous && now > previous.at) rates.set(key, Math.max(0, ((requests - previous.requests) * 1_000) / (now - previous.at)));
  samples.set(key, { requests, at: now });
}

/** Drops the counters and rates of instances (and services) the gateway no longer lists, which would otherwise pile up for as long as the page is open. */
function forgetOthers(sampled) {
  for (const key of samples.keys()) {
    if (sampled.has(key)) continue;
    samples.delete(key);
    rates.delete(key);
  }
  for (const key of rates.keys()) if (!sampled.has(key)) rates.delete(key);
  // How many instances the page keeps rates for, for tools and tests (it should match the rows shown).
  $('services').dataset.sampled = String(samples.size);
}

function showNotice(text) {
  $('notice').textContent = text;
  $('notice').hidden = text === '';
}

function renderRegistries(registries) {
  // The configuration file's static instances count as a provider; shown only when they list something.
  const shown = registries.filter((registry) => registry.kind !== 'static' || registry.services > 0);
  $('registries').replaceChildren(
    ...shown.map((registry) =>
      h(
        'li',
        { 'data-state': registry.state, title: registry.reason ? `${registry.state}: ${registry.reason}` : registry.state },
        h('strong', {}, registry.url ?? registry.name),
        ` ${registry.state}`,
        // An outage must read at a glance: its age, since the cards keep the last good sets meanwhile.
        registry.state === 'stale' && registry.staleSince ? ` since ${new Date(registry.staleSince).toLocaleTimeString()}` : '',
      ),
    ),
  );
}

/** Renders once for a burst of events (a deploy), however many arrived together. */
function renderServices() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => {
    renderQueued = false;
    renderCards();
  });
}

/** Puts a card per service in order, each updated in place, moving no card that is in place. */
function renderCards() {
  const shown = [...services.values()].map((service) => {
    let card = cards.get(service.name);
    if (!card) {
      card = new ServiceCard(service.name);
      cards.set(service.name, card);
    }
    card.update(service, (instance) => rates.get(`${service.name}|${instance.address}`) ?? 0);
    return card.element;
  });
  placeChildren($('services'), shown);
  for (const name of cards.keys()) if (!services.has(name)) cards.delete(name);
}

/** Applies an event to the cards at once; the settling fetch then brings counters and anything else up to date. */
function apply(event) {
  const data = event.data;
  const service = data.service ? services.get(data.service) : undefined;
  const find = () => service?.instances.find((instance) => instance.address === data.address);
  if (event.type === 'instance-added') {
    const instance = { ...data.instance, inRegistry: true, routable: data.routable, inFlight: 0, latencyMs: null, requests: 0, errors: 0 };
    instance.health = { ...data.health, ejectedUntil: null };
    if (service) service.instances = [...service.instances.filter((other) => other.address !== instance.address), instance];
    else services.set(data.service, { name: data.service, balancer: '', panic: false, instances: [instance] });
  } else if (event.type === 'instance-removed' && service) {
    service.instances = service.instances.filter((instance) => instance.address !== data.address);
  } else if (event.type === 'health-changed' && find()) {
    Object.assign(find(), { routable: data.routable, health: { ...data.to, ejectedUntil: data.ejectedUntil } });
  } else if (event.type === 'weight-changed' && find()) {
    Object.assign(find(), { weight: data.to, effectiveWeight: find().draining ? 0 : data.to });
  } else if (event.type === 'draining-changed' && find()) {
    Object.assign(find(), { draining: data.draining, effectiveWeight: data.draining ? 0 : find().weight });
  } else if (event.type === 'service-forgotten') {
    services.delete(data.service);
  }
  renderServices();
  clearTimeout(settleTimer);
  settleTimer = setTimeout(refresh, SETTLE_MS);
}

function log(event) {
  const { text, tone } = describeEvent(event);
  const time = new Date(event.time);
  const item = h('li', { 'data-tone': tone, 'data-type': event.type }, h('time', { datetime: event.time }, time.toLocaleTimeString()), h('span', { class: 'type' }, event.type), h('span', { class: 'text' }, text));
  const list = $('event-log');
  list.querySelector('.empty')?.closest('li')?.remove();
  list.prepend(item);
  while (list.children.length > EVENT_LOG_SIZE) list.lastElementChild.remove();
}

function connect() {
  const connection = $('connection');
  const show = ({ state, retryInMs }) => {
    connection.dataset.state = state;
    if (state === 'live') connection.textContent = 'live';
    else if (state === 'connecting') connection.textContent = 'connecting…';
    else connection.textContent = `disconnected, retrying in ${Math.round(retryInMs / 1_000)} s…`;
  };
  events.addEventListener('connection', ({ detail }) => {
    show(detail);
    // A stream (re)opened may have missed changes: read the whole state again.
    if (detail.state === 'live') void refresh();
  });
  show(events.state);
  // More changes happened while the page was away than the gateway keeps: the refresh on `live` reads the state again; the log says some are missing.
  events.addEventListener('resync', () => log({ type: 'resync', time: new Date().toISOString(), data: {} }));
  for (const type of ['instance-added', 'instance-removed', 'health-changed', 'weight-changed', 'draining-changed', 'provider-status', 'removal-held', 'removal-released', 'service-forgotten', 'config-applied', 'config-refused', 'config-written']) {
    events.addEventListener(type, (message) => {
      const event = JSON.parse(message.data);
      log(event);
      apply(event);
    });
  }
}

// A token entered in place of a refused one: read everything again now, not at the next round.
tokenEvents.addEventListener('token-changed', () => void refresh());
$('event-log').append(h('li', {}, h('span', { class: 'empty' }, 'Changes appear here as they happen.')));
void refresh();
setInterval(refresh, REFRESH_MS);
connect();
