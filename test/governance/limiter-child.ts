/**
 * A worker process for the limiter tests, run as `node dist/test/governance/limiter-child.js` with:
 *   SEGMENT, WORKER (worker index), MODE:
 *     race: wait at BARRIER, then COUNT admissions of RULES (JSON LimitRule[]) with RESERVE tokens;
 *           print {"admitted": n}
 *     hold: take HOLD concurrency places of RULES, print "ready", and wait to be killed.
 *     stress: count itself in CLOCK[2], then until CLOCK[1] is set, admit RULES[0] against a clock of CLOCK[0] seconds (moved by the
 *           parent) and settle half of the tickets at random with less than reserved; mark held
 *           places in CLOCK[8 + WORKER]; print {"perEpoch": {epoch: admitted}, "maxHeld": n}.
 */

import { SharedMemoryLimiter } from '../../src/governance/limiter/index.js';
import type { LimitRule, Ticket } from '../../src/governance/limiter/index.js';
import { openSegment, SharedMemory } from '../../src/shm/index.js';

const env = process.env;
const worker = Number(env.WORKER);
const shm = SharedMemory.open(env.SEGMENT!, { workerIndex: worker });
const clockCells = env.CLOCK === undefined ? undefined : new Int32Array(openSegment(env.CLOCK), 0, 16);
const limiter = new SharedMemoryLimiter(shm, clockCells === undefined ? {} : { rateClockMs: () => Atomics.load(clockCells, 0) * 1000 + 500 });
const rules = JSON.parse(env.RULES!) as LimitRule[];

if (env.MODE === 'race') {
  const flags = new Int32Array(openSegment(env.BARRIER!), 0, 2);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  Atomics.add(flags, 0, 1);
  while (Atomics.load(flags, 1) === 0) Atomics.wait(nap, 0, 0, 1);
  const reserve = Number(env.RESERVE ?? '0');
  let admitted = 0;
  for (let i = 0; i < Number(env.COUNT); i++) {
    const admission = limiter.admit(rules, [], reserve, 0);
    if (admission.ok) {
      admitted++;
      // Settle at once with the reservation: the rate windows keep the charge, concurrency frees.
      limiter.settle(admission.ticket, reserve, 0);
    }
  }
  console.log(JSON.stringify({ admitted }));
} else if (env.MODE === 'hold') {
  const tickets: Ticket[] = [];
  for (let i = 0; i < Number(env.HOLD); i++) {
    const admission = limiter.admit(rules, [], 0, 0);
    if (!admission.ok) throw new Error(`could not take place ${i}: ${admission.reason}`);
    tickets.push(admission.ticket);
  }
  console.log('ready');
  setInterval(() => tickets.length, 1000);
} else if (env.MODE === 'stress') {
  const cells = clockCells!;
  const perEpoch: Record<number, number> = {};
  const held: Ticket[] = [];
  let maxHeld = 0;
  // Marked after admission and unmarked before settling, so the marks never exceed what is really
  // held: a sum of marks above the limit would prove an over-admission.
  const marks = () => Atomics.load(cells, 8) + Atomics.load(cells, 9) + Atomics.load(cells, 10) + Atomics.load(cells, 11);
  const release = (ticket: Ticket, tokens: number) => {
    Atomics.sub(cells, 8 + worker, 1);
    limiter.settle(ticket, tokens, 0);
  };
  Atomics.add(cells, 2, 1);
  while (Atomics.load(cells, 1) === 0) {
    const admission = limiter.admit(rules, [], 1 + Math.floor(Math.random() * 40), 0);
    if (admission.ok) {
      Atomics.add(cells, 8 + worker, 1);
      maxHeld = Math.max(maxHeld, marks());
      const epoch = (admission.ticket as unknown as { rules: number[] }).rules[1]!;
      perEpoch[epoch] = (perEpoch[epoch] ?? 0) + 1;
      held.push(admission.ticket);
    }
    if (held.length > 0 && Math.random() < 0.5) {
      const ticket = held.shift()!;
      release(ticket, Math.floor(Math.random() * ticket.reservedTokens));
    }
  }
  for (const ticket of held) release(ticket, ticket.reservedTokens);
  console.log(JSON.stringify({ perEpoch, maxHeld }));
}
