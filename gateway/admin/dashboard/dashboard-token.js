// The admin token of the dashboard, one place for every panel. It comes from `?token=` (removed from
// the address bar at once, and so from history and screenshots) and is kept for the tab. A token the
// gateway refuses (mistyped, or rotated since the page got it) is forgotten, and the page asks for
// one in a small form: before, it kept sending the refused one and said "unauthorized" until it was
// opened with `?token=` again. Every panel sends the new token from its next call on, and the event
// stream opens again with it (`token-changed`).

const STORAGE_KEY = 'switchboard-admin-token';

/** Tells `token-changed` when the user entered a token: ask the gateway again now rather than at the next poll. */
export const tokenEvents = new EventTarget();

const form = document.getElementById('token-form');
const input = form.elements.namedItem('token');

/** The token this tab sends, or '' (a gateway without a token needs none). */
export function adminToken() {
  return sessionStorage.getItem(STORAGE_KEY) || '';
}

/**
 * `fetch(path)` with the tab's token. A 401 forgets the token it was sent with, unless the user has
 * entered another meanwhile (an older call answered late must not throw away the new one), and
 * shows the form; the answer is returned as it came, for the caller to report.
 */
export async function adminFetch(path, init = {}) {
  const token = adminToken();
  const response = await fetch(path, { ...init, headers: { ...init.headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  if (response.status === 401 && token === adminToken()) refused(token !== '');
  return response;
}

function refused(hadToken) {
  sessionStorage.removeItem(STORAGE_KEY);
  // Said once, as the form appears: the calls made without a token while it is open leave its words, and what the user is typing, alone.
  if (!form.hidden) return;
  form.querySelector('.token-why').textContent = hadToken
    ? 'The gateway refused the admin token this tab had (mistyped, or rotated since): enter the current one.'
    : 'The admin API needs a token: enter it here, or open this page with ?token=<admin token>.';
  form.hidden = false;
  if (document.activeElement === document.body || document.activeElement === null) input.focus();
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = input.value.trim();
  if (token === '') return;
  sessionStorage.setItem(STORAGE_KEY, token);
  input.value = '';
  form.hidden = true;
  tokenEvents.dispatchEvent(new Event('token-changed'));
});

function takeFromAddress() {
  const url = new URL(location.href);
  const fromQuery = url.searchParams.get('token');
  if (!fromQuery) return;
  sessionStorage.setItem(STORAGE_KEY, fromQuery);
  url.searchParams.delete('token');
  history.replaceState(null, '', url);
}

takeFromAddress();
