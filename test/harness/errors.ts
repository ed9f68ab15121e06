import { SwitchboardError } from '../../src/errors.ts';

/** A test-harness failure (a registry that would not start, a missing binary); never thrown by production code. */
export class HarnessError extends SwitchboardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SB_TEST_HARNESS', message, options);
  }
}

/** A `waitFor` condition that did not hold before its deadline; `cause` carries the probe's last error. */
export class WaitTimeoutError extends SwitchboardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SB_TEST_WAIT_TIMEOUT', message, options);
  }
}
