// A client of the gateway's admin API for tests: typed reads of the JSON views and of /metrics.
import type { InstanceView, ServiceView } from '../../gateway/admin/service-view.ts';
import { parsePrometheusText, type PrometheusFamily } from './prometheus-text.ts';
import { openEventStream, type SseConnection } from './sse-client.ts';

/** Reads one admin listener with its token (none when the listener has none). */
export interface AdminClient {
  readonly url: string;
  /** The Authorization header to send, empty without a token. */
  readonly headers: Record<string, string>;
  /** GET `path` with the token; the response, whatever its status. */
  get(path: string, init?: RequestInit): Promise<Response>;
  /** `GET /api/services`; throws unless it answers 200. */
  services(): Promise<ServiceView[]>;
  /** The instance `id` of `service` as `/api/services` shows it now, or undefined. */
  instance(service: string, id: string): Promise<InstanceView | undefined>;
  /** `GET /metrics`, parsed strictly as Prometheus text. */
  metrics(): Promise<Map<string, PrometheusFamily>>;
  /** Opens `/api/events` with the token; with `lastEventId`, buffered events after it are replayed first. */
  events(lastEventId?: string): Promise<SseConnection>;
}

/** A client of the admin listener at `url` (`http://127.0.0.1:<port>`). */
export function adminClient(url: string, token?: string): AdminClient {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const get = (path: string, init: RequestInit = {}) => fetch(`${url}${path}`, { ...init, headers: { ...headers, ...(init.headers as Record<string, string> | undefined) } });
  const json = async <T>(path: string): Promise<T> => {
    const response = await get(path);
    if (response.status !== 200) throw new Error(`${path} answered ${response.status}: ${await response.text()}`);
    return (await response.json()) as T;
  };
  const services = async () => (await json<{ services: ServiceView[] }>('/api/services')).services;
  return {
    url,
    headers,
    get,
    services,
    async instance(service, id) {
      return (await services()).find((candidate) => candidate.name === service)?.instances.find((instance) => instance.id === id);
    },
    async metrics() {
      const response = await get('/metrics');
      if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
      return parsePrometheusText(await response.text());
    },
    events: (lastEventId) => openEventStream(`${url}/api/events`, { ...headers, ...(lastEventId === undefined ? {} : { 'last-event-id': lastEventId }) }),
  };
}
