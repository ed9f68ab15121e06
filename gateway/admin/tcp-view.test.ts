import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/index.ts';
import { tcpView } from './tcp-view.ts';

describe('the /api/tcp view', () => {
  it('lists tcp entry points and sums the tcp metrics of their services from the Prometheus text', () => {
    const config = parseConfig('g.yaml', 'entryPoints:\n  web: { listen: 8080 }\n  redis: { listen: "127.0.0.1:6380", protocol: tcp, service: redis, proxyProtocol: 1 }\n  idle: { listen: 6381, protocol: tcp, service: quiet }\n');
    const text = [
      '# TYPE switchboard_tcp_connections_open gauge',
      'switchboard_tcp_connections_open{service="redis"} 3',
      'switchboard_tcp_connections_total{service="redis"} 12',
      'switchboard_tcp_bytes_total{service="redis",direction="in"} 100',
      'switchboard_tcp_bytes_total{service="redis",direction="out"} 250',
      'switchboard_tcp_errors_total{service="redis",class="connect-refused"} 2',
      'switchboard_requests_total{route="r",service="redis",status="2xx"} 9',
      'nodejs_eventloop_lag_mean_seconds Nan',
    ].join('\n');
    expect(tcpView(config, text)).toEqual({
      entryPoints: [
        { name: 'redis', listen: '127.0.0.1:6380', service: 'redis', sni: {}, tls: false, passthrough: false, proxyProtocol: 1, idleTimeoutMs: 600_000 },
        { name: 'idle', listen: ':6381', service: 'quiet', sni: {}, tls: false, passthrough: false, proxyProtocol: null, idleTimeoutMs: 600_000 },
      ],
      services: [
        { name: 'quiet', open: 0, total: 0, bytesIn: 0, bytesOut: 0, errors: {} },
        { name: 'redis', open: 3, total: 12, bytesIn: 100, bytesOut: 250, errors: { 'connect-refused': 2 } },
      ],
    });
  });

  it('reads a service whose name needs escaping in the Prometheus text (a backslash, a quote, a brace) as that service', () => {
    const config = parseConfig('g.yaml', `entryPoints:\n  db: { listen: 6380, protocol: tcp, service: 'we\\ird"}x' }\n`);
    const text = 'switchboard_tcp_connections_open{service="we\\\\ird\\"}x"} 4\nswitchboard_tcp_bytes_total{service="we\\\\ird\\"}x",direction="out"} 9\n';
    expect(tcpView(config, text).services).toEqual([{ name: 'we\\ird"}x', open: 4, total: 0, bytesIn: 0, bytesOut: 9, errors: {} }]);
  });

  it('after a reload lists the listeners as they run (addresses wait for a restart) with the forwarding the reload applied', () => {
    const started = parseConfig('g.yaml', 'entryPoints:\n  web: { listen: 8080 }\n  redis: { listen: "127.0.0.1:6380", protocol: tcp, service: redis }\n');
    const reloaded = parseConfig(
      'g.yaml',
      'entryPoints:\n  web: { listen: 8080 }\n  redis: { listen: "127.0.0.1:6390", protocol: tcp, service: cache, idleTimeout: 5m }\n  later: { listen: 6391, protocol: tcp, service: other }\n',
    );
    // The data plane still listens on 6380 and takes no connection on 6391 until a restart, while
    // new connections on 6380 go to cache with the new idle timeout.
    expect(tcpView(reloaded, '', started).entryPoints).toEqual([{ name: 'redis', listen: '127.0.0.1:6380', service: 'cache', sni: {}, tls: false, passthrough: false, proxyProtocol: null, idleTimeoutMs: 300_000 }]);
  });
});
