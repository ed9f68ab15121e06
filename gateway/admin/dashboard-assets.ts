import { readFile } from 'node:fs/promises';

/** One static file of the dashboard, read once at start-up. */
export interface DashboardAsset {
  readonly body: Buffer;
  readonly contentType: string;
}

const FILES: ReadonlyArray<readonly [path: string, file: string, contentType: string]> = [
  ['/', 'index.html', 'text/html; charset=utf-8'],
  ['/dashboard.css', 'dashboard.css', 'text/css; charset=utf-8'],
  ['/dashboard.js', 'dashboard.js', 'text/javascript; charset=utf-8'],
  ['/dashboard-format.js', 'dashboard-format.js', 'text/javascript; charset=utf-8'],
  ['/dashboard-events.js', 'dashboard-events.js', 'text/javascript; charset=utf-8'],
  ['/dashboard-token.js', 'dashboard-token.js', 'text/javascript; charset=utf-8'],
  ['/dashboard-cards.js', 'dashboard-cards.js', 'text/javascript; charset=utf-8'],
  ['/dashboard-traffic.js', 'dashboard-traffic.js', 'text/javascript; charset=utf-8'],
  ['/dashboard-breakers.js', 'dashboard-breakers.js', 'text/javascript; charset=utf-8'],
  ['/dashboard-breakers.css', 'dashboard-breakers.css', 'text/css; charset=utf-8'],
  ['/dashboard-tcp.js', 'dashboard-tcp.js', 'text/javascript; charset=utf-8'],
  ['/dashboard-peers.js', 'dashboard-peers.js', 'text/javascript; charset=utf-8'],
  ['/dashboard-explain.js', 'dashboard-explain.js', 'text/javascript; charset=utf-8'],
  ['/dashboard-routes.js', 'dashboard-routes.js', 'text/javascript; charset=utf-8'],
];

/**
 * The page may load its own script and style and talk to its own origin, nothing else; it may not
 * be framed (clickjacking), and navigating away sends no Referer (the page URL may carry the token).
 */
export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/** Reads the dashboard (gateway/admin/dashboard/: plain HTML, CSS and an ES module, no build step), keyed by URL path. */
export async function loadDashboardAssets(folder = new URL('./dashboard/', import.meta.url)): Promise<ReadonlyMap<string, DashboardAsset>> {
  const entries = await Promise.all(
    FILES.map(async ([path, file, contentType]) => [path, { body: await readFile(new URL(file, folder)), contentType }] as const),
  );
  return new Map(entries);
}
