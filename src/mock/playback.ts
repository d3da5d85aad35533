/**
 * Plays a MockReply into a sink on schedule: the first part after `firstDelayMs`, the others
 * `intervalMs` apart, pausing while the sink pushes back. Timing is the one thing the two front
 * ends would otherwise each get subtly wrong, so it lives here once.
 */

import { clock } from '../clock.js';
import type { MockReply } from './reply.js';

export interface ReplySink {
  /** Runs writes that belong together (uWS corks them into one syscall). */
  batch(writes: () => void): void;
  head(reply: MockReply): void;
  /** One body part; false asks for a pause until `Playback.resume()`. */
  data(part: string): boolean;
  end(): void;
  /** Break the connection instead of ending the body. */
  reset(): void;
}

export class Playback {
  private next = 0;
  /** When the next part is due, on the monotonic clock. */
  private due = 0;
  private paused = false;
  private done = false;
  private cancelTimer: (() => void) | null = null;

  constructor(
    private readonly reply: MockReply,
    private readonly sink: ReplySink,
  ) {}

  /** `deferred`: touch the sink only after returning, even when nothing has to wait. */
  start(deferred: boolean): void {
    if (this.reply.hang) return;
    const delay = this.reply.firstDelayMs;
    if (delay > 0) {
      this.later(delay, () => this.begin());
    } else if (deferred) {
      const immediate = setImmediate(() => {
        this.cancelTimer = null;
        this.begin();
      });
      this.cancelTimer = () => clearImmediate(immediate);
    } else {
      this.begin();
    }
  }

  resume(): void {
    if (!this.paused || this.done) return;
    this.paused = false;
    this.sink.batch(() => this.pump());
  }

  /** No sink call follows. */
  stop(): void {
    this.done = true;
    this.cancelTimer?.();
    this.cancelTimer = null;
  }

  private begin(): void {
    if (this.done) return;
    if (this.reply.resetAfter === 0) {
      this.done = true;
      this.sink.reset();
      return;
    }
    this.due = clock.monotonicMs();
    this.sink.batch(() => {
      this.sink.head(this.reply);
      this.pump();
    });
  }

  private pump(): void {
    const { parts, resetAfter, intervalMs } = this.reply;
    const limit = resetAfter === null ? parts.length : Math.min(resetAfter, parts.length);
    // Every sink call may stop() us (a handler aborting from inside onData), hence the re-checks.
    while (!this.done) {
      if (this.next >= limit) {
        this.done = true;
        if (resetAfter === null) this.sink.end();
        else this.sink.reset();
        return;
      }
      if (this.paused) return;
      if (intervalMs > 0) {
        const wait = this.due - clock.monotonicMs();
        if (wait > 0) {
          this.later(wait, () => this.sink.batch(() => this.pump()));
          return;
        }
      }
      // Due times advance from the schedule, not from "now": a slow reader gets a catch-up burst,
      // as from a real server that kept generating while the client was not reading.
      this.due += intervalMs;
      const part = parts[this.next++] ?? '';
      if (!this.sink.data(part)) this.paused = true;
    }
  }

  private later(ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.cancelTimer = null;
      if (!this.done) run();
    }, ms);
    this.cancelTimer = () => clearTimeout(timer);
  }
}
