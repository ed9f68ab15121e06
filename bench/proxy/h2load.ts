import { captureStdout } from '../lib/capture.ts';

/** What one h2load run measured. */
export interface H2loadResult {
  requestsPerSecond: number;
  /** Mean time per request (h2load prints no percentiles). */
  meanMs: number;
  /** Requests that failed, errored or timed out, plus answers other than 2xx/3xx. */
  errors: number;
}

/**
 * Runs `h2load` (nghttp2-client) for `durationS` seconds against `url` and parses its summary;
 * `h1` speaks HTTP/1.1 (one request at a time per client), `ratePerClient` caps each client's requests a second.
 * No `--warm-up-time`: h2load 1.52 then reports zero requests; warm up with a separate run.
 */
export async function runH2load(url: string, options: { clients: number; streams: number; durationS: number; h1?: boolean; ratePerClient?: number }): Promise<H2loadResult> {
  const args = ['-c', String(options.clients), '-m', String(options.streams), '-D', String(options.durationS), url];
  if (options.h1 === true) args.unshift('--h1');
  // Each client sends at most this many requests a second (h2load's --rps): a fixed load, not as many as the server takes.
  if (options.ratePerClient !== undefined) args.unshift('--rps', String(options.ratePerClient));
  const output = await captureStdout('h2load', args);
  const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(output);
  const statuses = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(output);
  const perSecond = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(output);
  const timeForRequest = /time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)/.exec(output);
  if (!requests || !perSecond || !timeForRequest) throw new Error(`could not read h2load's summary:\n${output}`);
  const mean = Number(timeForRequest[1]);
  const unit = timeForRequest[2];
  return {
    requestsPerSecond: Number(perSecond[1]),
    meanMs: unit === 'us' ? mean / 1_000 : unit === 's' ? mean * 1_000 : mean,
    errors: Number(requests[5]) + Number(requests[6]) + Number(requests[7]) + (statuses ? Number(statuses[3]) + Number(statuses[4]) : 0),
  };
}
