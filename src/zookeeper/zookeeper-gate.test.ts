import { describe, expect, it } from 'vitest';
import { ZooKeeperGate, type GateTicket } from './zookeeper-gate.ts';

describe('ZooKeeperGate', () => {
  it('runs at most its limit at once and the rest in arrival order as slots free up', () => {
    const gate = new ZooKeeperGate(2);
    const started: number[] = [];
    const tickets: GateTicket[] = [];
    for (let index = 0; index < 5; index += 1) tickets.push(gate.admit(() => started.push(index)));
    expect(started).toEqual([0, 1]);
    tickets[1]!.release();
    expect(started).toEqual([0, 1, 2]);
    // A second release of the same ticket frees nothing more.
    tickets[1]!.release();
    expect(started).toEqual([0, 1, 2]);
    tickets[0]!.release();
    expect(started).toEqual([0, 1, 2, 3]);
  });

  it('drops a waiting request that is released before its turn', () => {
    const gate = new ZooKeeperGate(1);
    const started: string[] = [];
    const first = gate.admit(() => started.push('first'));
    const abandoned = gate.admit(() => started.push('abandoned'));
    gate.admit(() => started.push('last'));
    abandoned.release();
    first.release();
    expect(started).toEqual(['first', 'last']);
  });

  it('lets a request that finishes synchronously free its slot for the next one', () => {
    const gate = new ZooKeeperGate(1);
    const started: number[] = [];
    for (let index = 0; index < 3; index += 1) gate.admit((ticket) => {
      started.push(index);
      ticket.release();
    });
    expect(started).toEqual([0, 1, 2]);
  });
});
