import { describe, expect, it } from 'vitest';
import { ConfigFileError } from '../../errors.ts';
import { parseInstanceList } from './instance-list.ts';

describe('parseInstanceList', () => {
  it.each([
    ['an unclosed list', 'services:\n  user: [127.0.0.1:1\n'],
    ['a key given twice', 'services:\n  user: []\n  user: []\n'],
  ])('refuses %s with a one-line reason that names the place and ends there, not with the colon before the excerpt', (_case, text) => {
    let error: unknown;
    try {
      parseInstanceList('/etc/sb/instances.yaml', text);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(ConfigFileError);
    const { message } = error as ConfigFileError;
    expect(message).toMatch(/^\/etc\/sb\/instances\.yaml: not valid YAML or JSON: .+ at line \d+, column \d+$/);
  });
});
