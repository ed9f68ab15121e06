import { describe, expect, it } from 'vitest';
import { meetsExpectation } from './expectation.ts';

describe('meetsExpectation', () => {
  it.each([
    { value: '100-continue', met: true },
    { value: '100-Continue', met: true },
    { value: ' 100-continue ', met: true },
    { value: '100-continue, 100-continue', met: true },
    { value: ', 100-continue,', met: true },
    { value: ['100-continue', '100-CONTINUE'], met: true },
    { value: '100-continue, foo', met: false },
    { value: 'foo, 100-continue', met: false },
    { value: ['100-continue', 'foo'], met: false },
    { value: '100-continue; x=1', met: false },
    { value: 'x-100-continue', met: false },
    { value: '100-continued', met: false },
    { value: 'something-else', met: false },
    { value: '', met: false },
    { value: ' , ', met: false },
  ])('takes $value as met: $met', ({ value, met }) => {
    expect(meetsExpectation(value)).toBe(met);
  });
});
