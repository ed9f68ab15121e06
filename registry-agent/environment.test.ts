import { describe, expect, it } from 'vitest';
import { unknownAgentVariables } from './environment.ts';

describe('unknownAgentVariables', () => {
  it('names each SWITCHBOARD_* variable no flag reads, with the flag variable it most likely meant', () => {
    expect(
      unknownAgentVariables({
        SWITCHBOARD_SERVICE: 'user',
        SWITCHBOARD_HEALTH_PORT: '9000',
        SWITCHBOARD_METADTA: 'zone=eu',
        SWITCHBOARD_DRAIN_TIME: '5s',
        SWITCHBOARD_LOGLEVEL: 'debug',
        SWITCHBOARD_COLOUR: '1',
        PATH: '/usr/bin',
      }),
    ).toEqual([
      { name: 'SWITCHBOARD_COLOUR', meant: undefined },
      { name: 'SWITCHBOARD_DRAIN_TIME', meant: undefined },
      { name: 'SWITCHBOARD_LOGLEVEL', meant: 'SWITCHBOARD_LOG_LEVEL' },
      { name: 'SWITCHBOARD_METADTA', meant: 'SWITCHBOARD_METADATA' },
    ]);
  });

  it('knows every flag, the log level and what a gateway sharing the environment reads', () => {
    expect(
      unknownAgentVariables({
        SWITCHBOARD_REGISTRY: 'zk://127.0.0.1:2181/services',
        SWITCHBOARD_ETCD_PASSWORD_FILE: '/run/secrets/etcd',
        SWITCHBOARD_ZK_USERNAME: 'agent',
        SWITCHBOARD_PRETTY: '1',
        SWITCHBOARD_LOG_LEVEL: 'info',
        SWITCHBOARD_ADMIN_TOKEN: 'secret',
        SWITCHBOARD_WORKER_SLOT: '1',
      }),
    ).toEqual([]);
  });

  it('passes over the service links Kubernetes sets for a Service named switchboard-health, and nothing that only looks like one', () => {
    expect(
      unknownAgentVariables({
        SWITCHBOARD_HEALTH_SERVICE_HOST: '10.96.0.13',
        SWITCHBOARD_HEALTH_SERVICE_PORT: '9000',
        SWITCHBOARD_HEALTH_SERVICE_PORT_PROBE: '9000',
        SWITCHBOARD_HEALTH_PORT: 'tcp://10.96.0.13:9000',
        SWITCHBOARD_HEALTH_PORT_9000_TCP: 'tcp://10.96.0.13:9000',
        SWITCHBOARD_HEALTH_PORT_9000_TCP_PROTO: 'tcp',
        SWITCHBOARD_HEALTH_PORT_9000_TCP_PORT: '9000',
        SWITCHBOARD_HEALTH_PORT_9000_TCP_ADDR: '10.96.0.13',
        SWITCHBOARD_HEALTH_PORT_PROBE: '9000',
      }),
    ).toEqual([{ name: 'SWITCHBOARD_HEALTH_PORT_PROBE', meant: undefined }]);
  });

  it('passes over the service links Kubernetes sets for a Service named switchboard, and nothing that only looks like one', () => {
    expect(
      unknownAgentVariables({
        SWITCHBOARD_SERVICE_HOST: '10.96.0.12',
        SWITCHBOARD_SERVICE_PORT: '8080',
        SWITCHBOARD_SERVICE_PORT_HTTP: '8080',
        SWITCHBOARD_PORT_8080_TCP: 'tcp://10.96.0.12:8080',
        SWITCHBOARD_PORT_8080_TCP_PROTO: 'tcp',
        SWITCHBOARD_PORT_8080_TCP_PORT: '8080',
        SWITCHBOARD_PORT_8080_TCP_ADDR: '10.96.0.12',
        SWITCHBOARD_PORT_HTTP: '8080',
        SWITCHBOARD_SERVICE_HOSTNAME: 'gw',
      }),
    ).toEqual([
      { name: 'SWITCHBOARD_PORT_HTTP', meant: undefined },
      { name: 'SWITCHBOARD_SERVICE_HOSTNAME', meant: undefined },
    ]);
  });
});
