// The dashboard's "try a request" box: asks GET /api/explain where a request would go and shows the
// route (and near misses), middleware, service, instances and the instance the balancer would pick.
// Its own module so that the dashboard's main script stays as it is.
import { h, healthLabel } from './dashboard-format.js';
import { adminFetch } from './dashboard-token.js';

const form = document.getElementById('explain-form');
const result = document.getElementById('explain-result');

form.addEventListener('submit', (event) => {
  event.preventDefault();
  void explain(new FormData(form));
});

async function explain(data) {
  const query = new URLSearchParams({ method: data.get('method'), path: data.get('path') });
  if (data.get('host')) query.set('host', data.get('host'));
  result.replaceChildren(h('p', { class: 'reason' }, 'asking…'));
  try {
    const response = await adminFetch(`api/explain?${query}`, { cache: 'no-store' });
    const body = await response.json();
    if (!response.ok) throw new Error(body.message || `api/explain answered ${response.status}`);
    result.replaceChildren(render(body));
  } catch (error) {
    result.replaceChildren(h('p', { class: 'reason', 'data-field': 'error' }, error.message));
  }
}

function render(view) {
  const rows = [
    ['route', view.route ? `${view.route.name}${view.route.namespace ? ' (namespace)' : ''} → ${view.route.service} ${view.route.upstreamPath}` : 'none matches (404)'],
    ['near misses', view.nearMisses.length === 0 ? '—' : list(view.nearMisses.map((miss) => h('li', { 'data-route': miss.name }, `${miss.name}: ${miss.reasons.join('; ')}`)))],
    ['middleware', view.middleware.map((layer) => layer.name).join(' → ') || '—'],
    ['service', view.service ? `${view.service.name} (${view.service.balancer}${view.service.panic ? ', panic' : ''})` : '—'],
    ['instances', view.instances.length === 0 ? '—' : list(view.instances.map(instanceItem(view.pick)))],
  ];
  const outcome = view.pick ? `${view.outcome} → ${view.pick.id}` : view.outcome;
  return h(
    'dl',
    {},
    ...rows.flatMap(([name, value]) => [h('dt', {}, name), h('dd', { 'data-field': name.replace(' ', '-') }, value)]),
    h('dt', {}, 'outcome'),
    h('dd', { 'data-field': 'outcome', 'data-outcome': view.outcome, 'data-pick': view.pick?.id ?? '' }, outcome),
  );
}

function instanceItem(pick) {
  return (instance) =>
    h(
      'li',
      { 'data-instance': instance.id, 'data-picked': String(pick?.address === instance.address) },
      `${pick?.address === instance.address ? '→ ' : ''}${instance.id} ${instance.address} weight ${instance.effectiveWeight} ${healthLabel(instance.health.state)}${instance.routable ? '' : ' (no traffic)'}`,
    );
}

function list(items) {
  return h('ul', {}, ...items);
}
