import { connect } from 'node:net';
import { probeFailureDetail, type HealthProbe } from './probe.ts';

/** A probe that passes when a TCP connection to the target opens; the socket is closed at once. */
export function tcpProbe(): HealthProbe {
  return (target, signal) =>
    new Promise((resolve) => {
      const socket = connect({ host: target.host, port: target.port, signal });
      socket.once('connect', () => {
        socket.destroy();
        resolve({ healthy: true, detail: 'connected' });
      });
      // An abort surfaces as an 'error' (AbortError) too, so this is the only failure path.
      socket.once('error', (error) => {
        socket.destroy();
        resolve({ healthy: false, detail: probeFailureDetail(error, signal) });
      });
    });
}
