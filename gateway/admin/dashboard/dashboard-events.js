// The page's one event stream, shared by every panel: an EventSource holds a connection for as long
// as the page is open, and a browser opens about six per host over HTTP/1.1, so two per page left a
// third tab's requests waiting and a fourth tab unable to load at all.

/** The token as dashboard.js reads it (it runs after this module, and only then moves `?token=` to the tab's storage). */
const token = new URL(location.href).searchParams.get('token') || sessionStorage.getItem('switchboard-admin-token') || '';

/** `/api/events`, opened once per page; listen with `addEventListener(type, …)`. */
export const events = new EventSource(token ? `api/events?token=${encodeURIComponent(token)}` : 'api/events');
