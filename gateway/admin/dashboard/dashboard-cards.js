// The dashboard's service cards, changed in place. A card keeps its elements for as long as its
// service is listed, with one row per instance (by id) kept across updates, and an update rewrites
// only the fields whose text changed. Building the whole card again on each update held the page's
// main thread for 56–455 ms with 200 instances, dropped the user's text selection in it, and made a
// card out of view shrink to its placeholder size (so the page under it jumped).
import { h, healthLabel, placeChildren, rateText } from './dashboard-format.js';

const COLUMNS = ['Instance', 'Weight', 'Health', 'req/s', 'In flight', 'Errors'];
/** What each element shows, as a key: an element is filled again only when its key changes. */
const shown = new WeakMap();

/** Fills `element` with `parts()` unless it already shows `key`. */
function show(element, key, parts) {
  if (shown.get(element) === key) return;
  shown.set(element, key);
  element.replaceChildren(...parts().filter((part) => part !== '' && part !== undefined));
}

/** Sets attributes that differ only: writing an unchanged one still makes the browser match styles again. */
function setAttributes(element, attributes) {
  for (const [name, value] of Object.entries(attributes)) if (element.getAttribute(name) !== value) element.setAttribute(name, value);
}

/** One service's card: `element` stays the same from its first update to its service's end. */
export class ServiceCard {
  #key;
  /** Instance key (its id, or id and address when two share an id) → its row. */
  #rows = new Map();
  #header;
  #table;
  #tbody;
  #empty = h('p', { class: 'empty' });

  constructor(name) {
    // An id holds no whitespace (aria-labelledby splits on it), and registry names may have some.
    const headingId = `service-${encodeURIComponent(name)}`;
    this.#header = {
      algorithm: h('span', { class: 'algorithm' }),
      panic: h('span', { class: 'panic' }, 'panic: routing to all'),
      skipped: h('span', { class: 'skipped' }),
      summary: h('span', { class: 'summary' }),
    };
    const { algorithm, panic, skipped, summary } = this.#header;
    this.#tbody = h('tbody', {});
    const head = h('tr', {}, ...COLUMNS.map((column, index) => h('th', { class: index === 1 || index > 2 ? 'num' : '', scope: 'col' }, column)));
    this.#table = h('table', {}, h('thead', {}, head), this.#tbody);
    this.element = h('article', { class: 'card', 'data-service': name, 'aria-labelledby': headingId }, h('header', {}, h('h3', { id: headingId }, name), algorithm, panic, skipped, summary), this.#empty);
  }

  /** Makes the card show `service`, with `rateOf(instance)` its request rate; does nothing when neither changed. */
  update(service, rateOf) {
    const rates = service.instances.map(rateOf);
    const key = JSON.stringify([service, rates]);
    if (key === this.#key) return;
    this.#key = key;
    const total = rates.reduce((sum, rate) => sum + rate, 0);
    this.#updateHeader(service, total);
    const body = service.instances.length === 0 ? this.#empty : this.#table;
    const current = this.element.lastElementChild;
    if (current !== body) current.replaceWith(body);
    if (service.instances.length === 0) {
      const skipped = (service.providers ?? []).flatMap((provider) => provider.invalidEntries ?? []);
      this.#empty.textContent = skipped.length > 0 ? `No instances: every registry entry was skipped. ${skipped[0].key}: ${skipped[0].reason}` : 'No instances.';
    }
    this.#updateRows(service.instances, rates, total);
  }

  #updateHeader(service, total) {
    const { algorithm, panic, skipped, summary } = this.#header;
    if (algorithm.textContent !== service.balancer) algorithm.textContent = service.balancer;
    panic.hidden = !service.panic;
    const skippedCount = (service.providers ?? []).reduce((sum, provider) => sum + (provider.invalid ?? 0), 0);
    skipped.hidden = skippedCount === 0;
    show(skipped, JSON.stringify([skippedCount, skippedTitle(service)]), () => [`${skippedCount} ${skippedCount === 1 ? 'entry' : 'entries'} skipped`]);
    setAttributes(skipped, { title: skippedTitle(service) });
    const healthy = service.instances.filter((instance) => instance.health.state === 'healthy').length;
    const counts = `${healthy}/${service.instances.length}`;
    show(summary, JSON.stringify([counts, rateText(total)]), () => [h('strong', {}, counts), ' healthy · ', h('strong', {}, rateText(total)), ' req/s']);
  }

  /** Updates each instance's row, makes rows for new ones, drops those of instances gone, and puts them in the service's order. */
  #updateRows(instances, rates, total) {
    const keys = new Set();
    const rows = instances.map((instance, index) => {
      const key = keys.has(instance.id) ? `${instance.id}\u0000${instance.address}` : instance.id;
      keys.add(key);
      let row = this.#rows.get(key);
      if (!row) {
        row = h('tr', {}, ...COLUMNS.map((_, column) => h('td', { class: column === 1 || column > 2 ? 'num' : '' })));
        this.#rows.set(key, row);
      }
      updateRow(row, instance, rates[index], total);
      return row;
    });
    for (const key of this.#rows.keys()) if (!keys.has(key)) this.#rows.delete(key);
    placeChildren(this.#tbody, rows);
  }
}

function skippedTitle(service) {
  return (service.providers ?? []).flatMap((provider) => (provider.invalidEntries ?? []).map((entry) => `${entry.key}: ${entry.reason}`)).join('\n');
}

function updateRow(row, instance, rate, total) {
  const key = JSON.stringify([instance, rate, total]);
  if (shown.get(row) === key) return;
  shown.set(row, key);
  setAttributes(row, { 'data-instance': instance.id, 'data-address': instance.address, 'data-routable': String(instance.routable), 'data-draining': String(instance.draining === true) });
  const [who, weight, health, traffic, inFlight, errors] = row.cells;
  const source = instance.source ? `from ${instance.source}` : 'left the registry';
  show(who, JSON.stringify([instance.id, instance.address, source]), () => [
    h('span', { class: 'instance-id' }, instance.id),
    instance.id === instance.address ? '' : h('span', { class: 'address' }, instance.address),
    h('span', { class: 'source' }, source),
  ]);
  // What picks use now: 0 while draining, ramped in slow start. The registry's weight alone read as full traffic for an instance taking none.
  const effective = instance.effectiveWeight ?? instance.weight;
  show(weight, JSON.stringify([instance.weight, effective]), () => [String(instance.weight), effective === instance.weight ? '' : h('span', { class: 'effective-weight', title: 'the weight picks use now' }, `now ${effective}`)]);
  const reason = reasonText(instance);
  show(health, JSON.stringify([instance.health.state, instance.draining === true, reason]), () => [
    h('span', { class: 'badge', 'data-health': instance.health.state }, healthLabel(instance.health.state)),
    instance.draining ? h('span', { class: 'badge draining' }, '⏸ draining') : '',
    h('span', { class: 'reason' }, reason),
  ]);
  const share = total > 0 ? Math.round((rate / total) * 100) : 0;
  show(traffic, JSON.stringify([rateText(rate), share]), () => [rateText(rate), h('span', { class: 'rate-bar', style: { width: `${share}%` }, 'aria-hidden': 'true' })]);
  if (inFlight.textContent !== String(instance.inFlight)) inFlight.textContent = String(instance.inFlight);
  if (errors.textContent !== String(instance.errors)) errors.textContent = String(instance.errors);
}

function reasonText(instance) {
  const until = instance.health.ejectedUntil ? ` until ${new Date(instance.health.ejectedUntil).toLocaleTimeString()}` : '';
  const latency = instance.latencyMs === null ? '' : ` · ${instance.latencyMs} ms EWMA`;
  const draining = instance.draining ? ' · draining: no new requests, those in flight finish' : '';
  return `${instance.health.text}${until}${draining}${latency}`;
}
