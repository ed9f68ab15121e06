import { parseArgs } from 'node:util';

const HELP = `switchboard-agent: registers a backend in ZooKeeper or etcd while it is healthy

Usage: switchboard-agent --registry <url> --service <name> --port <port> [-- command...]

Options:
  --registry <url>   zk://host:port[,host:port]/root or etcd://host:port[,host:port]/prefix
  --service <name>   service name to register under
  --port <port>      backend port
  -h, --help         print this help
`;

const { values } = parseArgs({ options: { help: { type: 'boolean', short: 'h' } }, strict: false });

if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
process.stdout.write(HELP);
process.exit(2);
