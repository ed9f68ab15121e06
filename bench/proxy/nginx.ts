/** Where nginx listens in the proxy benchmark: cleartext HTTP/1.1, and TLS with HTTP/2 and HTTP/1.1. */
export interface NginxPorts {
  readonly http: number;
  readonly https: number;
}

/**
 * An nginx.conf for the benchmark: one worker, a keep-alive upstream block over both backends
 * (round-robin, as Switchboard is configured), a cleartext server and a TLS server that offers h2
 * and http/1.1 by ALPN with the same certificate Switchboard serves.
 */
export function nginxConfig(dir: string, ports: NginxPorts, upstreams: readonly number[], tls: { certFile: string; keyFile: string }): string {
  const location = 'location / { proxy_pass http://backends; proxy_http_version 1.1; proxy_set_header Connection ""; }';
  return `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  # nginx closes a connection after 1,000 requests by default (HTTP/2 too) and h2load does not reconnect.
  keepalive_requests 10000000;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream backends { ${upstreams.map((port) => `server 127.0.0.1:${port};`).join(' ')} keepalive 64; }
  server {
    listen 127.0.0.1:${ports.http};
    ${location}
  }
  server {
    listen 127.0.0.1:${ports.https} ssl http2;
    ssl_certificate ${tls.certFile};
    ssl_certificate_key ${tls.keyFile};
    ssl_protocols TLSv1.2 TLSv1.3;
    ${location}
  }
}
`;
}
