// Small pure helpers of the dashboard: building elements and putting numbers and events into words.

/**
 * Creates an element: `attrs` become attributes (`style` takes an object, applied through CSSOM so
 * the page's Content-Security-Policy needs no inline styles), children are nodes or text. Text is
 * always set as text, never parsed as HTML: registry metadata must not become markup.
 */
export function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === 'style') for (const [property, text] of Object.entries(value)) element.style.setProperty(property, text);
    else if (value !== undefined && value !== '') element.setAttribute(name, value);
  }
  for (const child of children) if (child !== '' && child !== undefined) element.append(child);
  return element;
}

/**
 * Makes `children` the children of `container`, in order, moving as few as it can: those not listed
 * go first, so that the ones after them need not move, and an element already in place stays put.
 * A node moved loses the user's text selection in it and is laid out again.
 */
export function placeChildren(container, children) {
  const kept = new Set(children);
  for (const child of [...container.children]) if (!kept.has(child)) child.remove();
  let next = container.firstElementChild;
  for (const child of children) {
    if (child === next) next = next.nextElementSibling;
    else container.insertBefore(child, next);
  }
}

/** A request rate for display: one decimal below 100 per second, whole numbers above. */
export function rateText(perSecond) {
  return perSecond >= 100 ? String(Math.round(perSecond)) : perSecond.toFixed(1);
}

/** Health state with a symbol, so that it reads without colour. */
export function healthLabel(state) {
  return state === 'healthy' ? '● healthy' : state === 'unhealthy' ? '✕ unhealthy' : '? unknown';
}

/** One line of the event log and its tone (good, bad, info). */
export function describeEvent(event) {
  const data = event.data;
  const who = data.service ? `${data.service}/${data.id ?? data.instance?.id}` : '';
  switch (event.type) {
    case 'resync':
      return { text: 'the stream reconnected after more changes than the gateway keeps: some are missing here; the cards were read again', tone: 'info' };
    case 'instance-added':
      return { text: `${who} at ${data.instance.address} (weight ${data.instance.weight}${data.instance.source ? `, ${data.instance.source}` : ''})`, tone: 'good' };
    case 'instance-removed':
      // grace-over: let go after leaving the registry, when it failed a check or was ejected as
      // often as when removalGrace ended; the event does not say which.
      return { text: `${who} at ${data.address}: ${data.reason === 'grace-over' ? 'no longer kept after leaving the registry' : 'left the registry'}`, tone: 'bad' };
    case 'health-changed':
      // The state may stay as it was while the reason changes (healthy, and now left the registry): say what changed.
      return {
        text: data.from.state === data.to.state ? `${who}: ${data.to.text}` : `${who}: ${data.from.state} → ${data.to.state} (${data.to.text})`,
        tone: data.to.state === 'unhealthy' ? 'bad' : data.to.state === 'healthy' ? 'good' : 'info',
      };
    case 'weight-changed':
      return { text: `${who}: weight ${data.from} → ${data.to}`, tone: 'info' };
    case 'draining-changed':
      return { text: `${who}: ${data.draining ? 'draining, no new requests' : 'drain mark withdrawn'}`, tone: 'info' };
    case 'provider-status':
      return { text: `${data.provider}: ${data.state}${data.reason ? ` (${data.reason})` : ''}`, tone: data.state === 'connected' ? 'good' : data.state === 'stale' ? 'bad' : 'info' };
    case 'removal-held':
      return { text: `${data.service}: kept ${data.instances.map((held) => held.id).join(', ')} routable after a registry outage (until ${data.instances[0]?.until ?? '?'})`, tone: 'bad' };
    case 'removal-released':
      return { text: `${data.service}: ${data.instances.map((held) => held.id).join(', ')} ${data.reason === 'relisted' ? 'registered again' : 'hold over, removed'}`, tone: data.reason === 'relisted' ? 'good' : 'info' };
    case 'service-forgotten':
      return { text: `${data.service}: no registry lists it any more, forgotten`, tone: 'info' };
    case 'config-applied':
      return { text: `${data.routes} routes, ${data.services} services${data.restartRequired.length ? `; restart needed for ${data.restartRequired.join(', ')}` : ''}`, tone: 'good' };
    case 'config-refused':
      return { text: data.reason, tone: 'bad' };
    case 'config-written':
      return { text: `${data.action === 'delete' ? 'deleted' : 'wrote'} ${data.kind}/${data.name}${data.revision ? ` @ ${data.revision}` : ''} (from ${data.client})`, tone: 'info' };
    default:
      return { text: JSON.stringify(data), tone: 'info' };
  }
}
