/** The agent's `--help` text. */
export const AGENT_HELP = `switchboard-agent: registers a backend in ZooKeeper or etcd while it is healthy

Usage:
  switchboard-agent --registry <url> --service <name> --port <port> [options] [-- command...]

Required:
  --registry <url>     zk://host:port[,host:port...]/root or etcd://host:port[,...]/prefix
  --service <name>     service to register under
  --port <port>        backend port

Options:
  --host <host>        backend host as gateways reach it (127.0.0.1)
  --weight <n>         relative share of traffic, 0 drains (1)
  --metadata k=v       metadata entry; repeat for more
  --id <id>            instance id (<service>-<host>-<port>)
  --protocol <name>    http, https, h2c, h2, grpc or grpcs: how gateways speak to the backend
                       (unset: the gateway's default for the service, http unless configured)
  --health <probe>     tcp, http:/path expecting 2xx, or grpc[:service] for the standard
                       grpc.health.v1 check expecting SERVING (tcp); grpc and grpcs
                       backends take tcp or grpc[:service]; a failed probe is logged with
                       its reason (status 404, ECONNREFUSED, timeout), each at most once a
                       minute
  --health-port <port> port the probe connects to on --host, e.g. a management port
                       serving /health (--port); the probe speaks --protocol there
  --interval <dur>     time from the end of one probe to the start of the next (2s)
  --timeout <dur>      probe timeout (1s); probes never overlap, so a longer --timeout
                       than --interval only spaces slow probes further apart
  --rise <n>           passes before registering (2)
  --fall <n>           failures before deregistering (3)
  --drain <dur>        wait after marking the entry draining, before deleting it and stopping
                       the backend (5s); 0 deletes at once
  --ttl <dur>          ZooKeeper session timeout / etcd lease TTL (10s; at least 1s); a
                       ZooKeeper server grants within its min/maxSessionTimeout (warned);
                       an etcd lease is whole seconds, so 1500ms is a 2s lease (warned)
  --etcd-ca-file <path>
                       CA bundle that signed etcd's server certificate (etcds://; the
                       system roots by default)
  --etcd-cert-file <path>, --etcd-key-file <path>
                       client certificate and key for etcd's --client-cert-auth (etcds://)
  --etcd-username <user>, --etcd-password-file <path>
                       etcd user and a file holding its password (one trailing newline
                       dropped), for etcd's authentication; every --etcd-* flag is refused
                       on a zk:// registry
  --zk-username <user>, --zk-password-file <path>
                       ZooKeeper digest authentication (zk://): the session runs as that
                       user, and the nodes the agent creates can be changed only by it
                       (anyone may read them)
  --pretty             human-readable logs (coloured on a terminal, unless NO_COLOR is set)
  -h, --help           print this help

Every flag can also be set as an environment variable: --service is SWITCHBOARD_SERVICE,
--metadata is SWITCHBOARD_METADATA=k=v,k2=v2, and so on. Flags win. Any other SWITCHBOARD_*
variable (a misspelt one) is ignored with a warning at start. A <dur> is written 500ms,
2s, 1m, 1h or 1d, and is at most about 24.8 days (2^31 - 1 ms, the longest a timer waits).
Logs are JSON lines on stderr; SWITCHBOARD_LOG_LEVEL sets their level (info).

With "-- command...", the agent starts the backend as its child, registers it once healthy,
passes SIGHUP (unless its output is a terminal: there SIGHUP drains and ends it), SIGUSR1 and
SIGUSR2 on to it (ignored without a child), and exits with the child's status. On SIGTERM or
SIGINT it first marks its registry entry draining ("draining": true; gateways stop sending new
requests to it at once), waits --drain for them to do so and for their requests to finish,
deletes the entry, then stops the backend (SIGKILL after 10s); a backend that exits during the
drain cuts it short, and one with no entry (never healthy, unhealthy since, or never written
because the registry never answered) is stopped at once, without the drain; after a deletion
the registry did not confirm, --drain counts from the retried deletion's confirmation (waited
for up to half of --ttl) in place of the mark's. A second SIGINT (Ctrl-C) cuts the --drain wait
short: the entry is deleted and the backend stopped at once. Marking and deleting together give
up after --ttl (as the etcd lease rounds it, or as the ZooKeeper server granted the session)
when the registry does not answer (the entry ends with the session or lease anyway), so the
agent exits within --ttl + --drain + the backend's stop time (at most 10s) + 1s.
`;
