/**
 * Who is calling: consumers from config (each with key hashes, allowed models and labels) and the
 * keys created at run time through the admin API. Config consumers change with a snapshot; runtime
 * keys change between snapshots (a revocation must not wait for a reload), so they live in a
 * worker-wide `KeyRing` that each snapshot's directory consults.
 */

import type { ConsumerConfig } from '../config/schema.js';
import { compilePattern, matchesAny, type ModelPattern } from '../routing/pattern.js';

export interface Consumer {
  readonly name: string;
  /** Allowed client-facing models; undefined = all. */
  readonly models: readonly ModelPattern[] | undefined;
  readonly labels: Readonly<Record<string, string>>;
  readonly config: ConsumerConfig;
}

/** A key created through the admin API: only its hash travels (supervisor → workers, Redis). */
export interface RuntimeKey {
  readonly id: string;
  readonly hash: string;
  readonly consumer: string;
  readonly createdAt: string;
  readonly hint: string;
}

/** The runtime keys one worker knows, replaced whole on every change the supervisor sends. */
export class KeyRing {
  private byHash = new Map<string, string>();

  replace(keys: readonly RuntimeKey[]): void {
    const next = new Map<string, string>();
    for (const k of keys) next.set(k.hash, k.consumer);
    this.byHash = next;
  }

  consumerOf(hash: string): string | undefined {
    return this.byHash.get(hash);
  }

  get size(): number {
    return this.byHash.size;
  }
}

export class ConsumerDirectory {
  private readonly byName = new Map<string, Consumer>();
  private readonly byHash = new Map<string, Consumer>();

  constructor(
    configs: readonly ConsumerConfig[],
    private readonly ring: KeyRing,
    /** Enforce keys even with no consumer in config (runtime keys only). */
    readonly required: boolean,
  ) {
    for (const c of configs) {
      const consumer: Consumer = {
        name: c.name,
        models: c.models?.map(compilePattern),
        labels: c.labels ?? {},
        config: c,
      };
      this.byName.set(c.name, consumer);
      for (const hash of c.keys) this.byHash.set(hash, consumer);
    }
  }

  /** Whether requests must present a known key. */
  get enforced(): boolean {
    return this.required || this.byName.size > 0;
  }

  get(name: string): Consumer | undefined {
    return this.byName.get(name);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  /** The consumer a key hash belongs to: config keys first, then runtime keys. */
  byKeyHash(hash: string): Consumer | undefined {
    const configured = this.byHash.get(hash);
    if (configured) return configured;
    const name = this.ring.consumerOf(hash);
    return name === undefined ? undefined : this.byName.get(name);
  }

  mayUse(consumer: Consumer, model: string): boolean {
    return consumer.models === undefined || matchesAny(consumer.models, model);
  }
}
