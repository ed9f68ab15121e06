import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Where nginx listens in the proxy benchmark: cleartext HTTP/1.1 per backend kind, and TLS with HTTP/2 and HTTP/1.1. */
export interface NginxPorts {
  /** Cleartext proxy to the Node backends. */
  readonly http: number;
  /** Cleartext proxy to the nginx backends. */
  readonly httpToNginxBackends: number;
  /** TLS proxy (h2 and http/1.1) to the Node backends. */
  readonly https: number;
}

/**
 * An nginx.conf for the benchmark: one worker, a keep-alive upstream block per backend kind
 * (round-robin over both backends, as Switchboard is configured), a cleartext server per kind and a
 * TLS server that offers h2 and http/1.1 by ALPN with the same certificate Switchboard serves.
 */
export function nginxConfig(dir: string, ports: NginxPorts, backends: { node: readonly number[]; nginx: readonly number[] }, tls: { certFile: string; keyFile: string }): string {
  const location = (upstream: string) => `location / { proxy_pass http://${upstream}; proxy_http_version 1.1; proxy_set_header Connection ""; }`;
  const upstream = (name: string, ports: readonly number[]) => `upstream ${name} { ${ports.map((port) => `server 127.0.0.1:${port};`).join(' ')} keepalive 64; }`;
  return `${preamble(dir)}
  ${upstream('node_backends', backends.node)}
  ${upstream('nginx_backends', backends.nginx)}
  server {
    listen 127.0.0.1:${ports.http};
    ${location('node_backends')}
  }
  server {
    listen 127.0.0.1:${ports.httpToNginxBackends};
    ${location('nginx_backends')}
  }
  server {
    listen 127.0.0.1:${ports.https} ssl http2;
    ssl_certificate ${tls.certFile};
    ssl_certificate_key ${tls.keyFile};
    ssl_protocols TLSv1.2 TLSv1.3;
    ${location('node_backends')}
  }
}
`;
}

/**
 * An nginx.conf for the backends themselves: one worker answering every request on each port with
 * the same small JSON body the Node backend sends, so the proxies are measured against an upstream
 * that costs next to nothing.
 */
export function nginxBackendConfig(dir: string, ports: readonly number[]): string {
  const servers = ports.map((port) => `  server { listen 127.0.0.1:${port}; location / { default_type application/json; return 200 '{"ok":true,"port":${port}}'; } }`);
  return `${preamble(dir)}
${servers.join('\n')}
}
`;
}

/**
 * The command line that serves `ports` as nginx backends (`nginxBackendConfig`), its files written
 * under `dir/backends`.
 */
export async function nginxBackendCommand(dir: string, ports: readonly number[]): Promise<[command: string, args: string[]]> {
  const backendDir = join(dir, 'backends');
  await mkdir(backendDir, { recursive: true });
  await writeFile(join(backendDir, 'nginx.conf'), nginxBackendConfig(backendDir, ports));
  return ['nginx', ['-p', backendDir, '-c', join(backendDir, 'nginx.conf')]];
}

/**
 * The upstreams bench:proxy-cpu and bench:proxy-profile put behind every proxy: `BENCH_BACKENDS=nginx`
 * for nginx backends (where the proxy, not the backend, is the bottleneck), the Node backends otherwise.
 */
export const BENCH_BACKENDS: 'node' | 'nginx' = (() => {
  const kind = process.env.BENCH_BACKENDS ?? 'node';
  if (kind !== 'node' && kind !== 'nginx') throw new Error(`BENCH_BACKENDS is node or nginx, not ${kind}`);
  return kind;
})();

/** The heading's words for `BENCH_BACKENDS`. */
export const BACKENDS_LABEL = BENCH_BACKENDS === 'nginx' ? 'two nginx backends' : 'two Node backends';

function preamble(dir: string): string {
  return `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  # nginx closes a connection after 1,000 requests by default (HTTP/2 too) and h2load does not reconnect.
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`;
}
