import { Counter } from 'prom-client';
import { metricsRegistry } from '../metrics.ts';

/** Session lifecycle events of a supervised ZooKeeper client, by supervisor name and event. */
export const zookeeperSessionEventsTotal = new Counter({
  name: 'switchboard_zookeeper_session_events_total',
  help: 'Session lifecycle events of supervised ZooKeeper clients (new_session, reconnected, disconnected, expired, connect_timeout, read_timeout, auth_failed, credentials_changed).',
  labelNames: ['client', 'event'] as const,
  registers: [metricsRegistry],
});

/** Names of the events counted in `zookeeperSessionEventsTotal`. */
export type ZooKeeperSessionEvent = 'new_session' | 'reconnected' | 'disconnected' | 'expired' | 'connect_timeout' | 'read_timeout' | 'auth_failed' | 'credentials_changed';
