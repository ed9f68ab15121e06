import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from './load.ts';

const REFERENCE = new URL('../../docs/configuration.md', import.meta.url);
const examples = [...readFileSync(REFERENCE, 'utf8').matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1]!);

describe('docs/configuration.md', () => {
  it('has YAML examples', () => {
    expect(examples.length).toBeGreaterThan(5);
  });

  it.each(examples.map((text, index) => [index + 1, text] as const))('holds a valid configuration in YAML example %i', (_index, text) => {
    // Examples name certificate files that exist only on the reader's machine.
    expect(() => parseConfig('docs/configuration.md', text, { readFiles: false })).not.toThrow();
  });
});
