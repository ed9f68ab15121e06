// The dashboard's traffic charts: per service, requests per second by instance over the last five
// minutes (from /api/stats/services/<name>), with breaker and rate-limit events (and instance
// removals) marked where they happened, so a user can watch a balancer shift traffic. Hand-drawn
// SVG, no chart library; each line carries its numbers as data attributes for tools and tests.
import { events } from './dashboard-events.js';
import { h, rateText } from './dashboard-format.js';
import { adminFetch } from './dashboard-token.js';

const REFRESH_MS = 1_000;
const WINDOW_S = 300;
/** Seconds `data-recent` averages over. */
const RECENT_S = 5;
const WIDTH = 600;
const HEIGHT = 150;
const MARKERS_KEPT = 200;
/** Leading seconds without traffic (a gateway that just started) are cut, down to this many. */
const MIN_SHOWN_S = 60;
/** Event types marked on the charts by prefix; instance removals too, since they explain a shift. */
const MARKED_PREFIXES = ['breaker-', 'rate-limit-'];
/** Named SSE events must be listened to by name: the marked kinds other features emit, and ours. */
const MARKED_TYPES = ['breaker-opened', 'breaker-half-open', 'breaker-closed', 'rate-limit-fallback', 'rate-limit-recovered', 'instance-removed'];
const COLOURS = ['#0969da', '#bc4c00', '#1a7f37', '#8250df', '#cf222e', '#4d2d00', '#0550ae', '#6e7781'];
const SVG = 'http://www.w3.org/2000/svg';

/** `{ type, second, service }` of marked events, newest last. */
const markers = [];
/** Each instance keeps its colour while it is on the chart. */
const colours = new Map();

const svg = (tag, attrs, ...children) => {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  element.append(...children);
  return element;
};

async function getJson(path) {
  const response = await adminFetch(path, { cache: 'no-store' });
  if (!response.ok) throw new Error(`${path} answered ${response.status}`);
  return response.json();
}

function colourOf(service, address) {
  const key = `${service}|${address}`;
  if (!colours.has(key)) colours.set(key, COLOURS[[...colours.keys()].filter((other) => other.startsWith(`${service}|`)).length % COLOURS.length]);
  return colours.get(key);
}

/** A rounded-up axis maximum (1, 2, 5 × 10ⁿ), so the scale does not jitter with every sample. */
function axisMax(value) {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((step) => step * power).find((step) => step >= value);
}

/** The series without its leading idle seconds (at least `MIN_SHOWN_S` stay), so a young gateway's chart is not a flat line. */
function trimmed(series) {
  const all = Object.values(series.instances).map((values) => values.requests.findIndex((value) => value > 0)).filter((index) => index >= 0);
  const cut = Math.max(0, Math.min(all.length > 0 ? Math.min(...all) : Infinity, series.window - MIN_SHOWN_S));
  if (cut === 0) return series;
  const slice = (values) => ({ requests: values.requests.slice(cut), errors: values.errors.slice(cut) });
  return { ...series, window: series.window - cut, start: series.start + cut, instances: Object.fromEntries(Object.entries(series.instances).map(([address, values]) => [address, slice(values)])) };
}

function renderChart(full) {
  const series = trimmed(full);
  const instances = Object.entries(series.instances);
  const max = axisMax(Math.max(1, ...instances.flatMap(([, values]) => values.requests)));
  const x = (index) => (index / (series.window - 1)) * WIDTH;
  const y = (value) => HEIGHT - (value / max) * HEIGHT;
  const lines = instances.map(([address, values]) => {
    const recent = values.requests.slice(-RECENT_S).reduce((sum, value) => sum + value, 0) / RECENT_S;
    return svg('polyline', {
      class: 'traffic-line',
      fill: 'none',
      stroke: colourOf(series.service, address),
      'stroke-width': 1.5,
      'vector-effect': 'non-scaling-stroke',
      points: values.requests.map((value, index) => `${x(index).toFixed(1)},${y(value).toFixed(1)}`).join(' '),
      'data-address': address,
      'data-recent': recent.toFixed(2),
      'data-total': values.requests.reduce((sum, value) => sum + value, 0),
      'data-errors': values.errors.reduce((sum, value) => sum + value, 0),
    });
  });
  const marks = markers
    .filter((marker) => (marker.service === undefined || marker.service === series.service) && marker.second >= series.start && marker.second <= series.end)
    .map((marker) => {
      const at = x(marker.second - series.start).toFixed(1);
      return svg('line', { class: 'traffic-marker', x1: at, x2: at, y1: 0, y2: HEIGHT, 'data-type': marker.type, 'data-second': marker.second, 'vector-effect': 'non-scaling-stroke' }, svg('title', {}, `${marker.type} ${new Date(marker.second * 1_000).toLocaleTimeString()}`));
    });
  const chart = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': `${series.service}: requests per second by instance, last ${series.window} seconds` }, ...marks, ...lines);
  const legend = h(
    'ul',
    { class: 'traffic-legend' },
    ...instances.map(([address], index) => h('li', { 'data-address': address }, h('span', { class: 'swatch', style: { background: colourOf(series.service, address) } }), `${address} `, h('strong', {}, rateText(Number(lines[index].getAttribute('data-recent')))), ' req/s')),
  );
  return h(
    'figure',
    { class: 'traffic-chart', 'data-service': series.service, 'data-end': series.end },
    h('figcaption', {}, h('strong', {}, series.service), ` · requests/s by instance · peak scale ${max}/s`),
    chart,
    h('div', { class: 'traffic-axis' }, h('span', {}, series.window >= 120 ? `−${Math.round(series.window / 60)} min` : `−${series.window} s`), h('span', {}, 'now')),
    legend,
  );
}

async function refresh() {
  const section = document.getElementById('traffic');
  try {
    const { services } = await getJson('api/stats');
    const names = Object.keys(services).sort();
    const charts = await Promise.all(names.map((name) => getJson(`api/stats/services/${encodeURIComponent(name)}?window=${WINDOW_S}s`)));
    document.getElementById('traffic-charts').replaceChildren(...charts.map(renderChart));
    section.hidden = names.length === 0;
  } catch {
    // The main dashboard reports connection and token problems; the charts just wait for the next round.
  }
}

function listen() {
  for (const type of MARKED_TYPES) {
    events.addEventListener(type, (message) => {
      const event = JSON.parse(message.data);
      if (!MARKED_PREFIXES.some((prefix) => event.type.startsWith(prefix)) && event.type !== 'instance-removed') return;
      markers.push({ type: event.type, second: Math.floor(Date.parse(event.time) / 1_000), service: event.data?.service });
      if (markers.length > MARKERS_KEPT) markers.shift();
    });
  }
}

listen();
void refresh();
setInterval(refresh, REFRESH_MS);
