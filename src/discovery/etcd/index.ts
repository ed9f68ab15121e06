export {
  createEtcdProvider,
  DEFAULT_ETCD_BATCH_WINDOW_MS,
  DEFAULT_ETCD_PREFIX,
  DEFAULT_ETCD_REQUEST_TIMEOUT_MS,
  DEFAULT_ETCD_STALL_TIMEOUT_MS,
  type EtcdProviderOptions,
} from './provider-etcd.ts';
