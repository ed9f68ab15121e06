export { ZooKeeperSessionSupervisor, DEFAULT_SESSION_TIMEOUT_MS, CLOSE_GRACE_MS } from './session-supervisor.ts';
export type { ZooKeeperSession, ZooKeeperSessionState, SessionSupervisorOptions } from './session-supervisor.ts';
export { createGuardedClient } from './guarded-client.ts';
export type { GuardedClient, GuardedClientFactory, GuardedClientOptions } from './guarded-client.ts';
export { getChildren, getData, exists, addRecursiveWatch, readerFor, zxidToString, maxZxid } from './zookeeper-ops.ts';
export type { ZooKeeperReader, ZooKeeperWatcher, ChildrenResult, DataResult } from './zookeeper-ops.ts';
export { ZooKeeperError, ZooKeeperConnectTimeoutError, toZooKeeperError, isZooKeeperError, ZOOKEEPER_ERROR_NAMES } from './zookeeper-errors.ts';
export type { ZooKeeperErrorName } from './zookeeper-errors.ts';
export { zookeeperSessionEventsTotal } from './zookeeper-metrics.ts';
