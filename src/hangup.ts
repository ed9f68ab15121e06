/**
 * Whether a SIGHUP to this process is a request (the gateway reads its configuration again, a
 * worker or the agent stays) rather than its terminal hanging up. A program whose output is a
 * terminal gets SIGHUP when that terminal closes (an ssh session that ends, a closed window): it
 * ends, as programs run from a shell do, rather than run on unattended, writing its logs to a
 * terminal that is gone; but as on SIGTERM (the gateway drains its requests in flight, the agent
 * deregisters), not by Node's default, which would cut them. Under systemd, Docker without `-t`, `nohup` or any redirect of
 * its output there is no terminal to hang up, and a SIGHUP is someone's request (`systemctl
 * reload`, `kill -HUP`). `bin/switchboard.js` and `bin/switchboard-agent.js` repeat the test, as
 * they run before any bundle loads.
 */
export function hangupIsRequest(): boolean {
  return !(process.stdout.isTTY || process.stderr.isTTY);
}
