/**
 * The decisions of one request's attempts: which target, endpoint and key to send the next attempt
 * to, and after a failure whether there is a next attempt at all and how long to wait for it. Pure
 * decisions over the route plan and the provider groups (shared-memory counters); sending, waiting
 * and relaying are the server's (src/server/attempt-loop.ts).
 *
 * The order, for a request that keeps failing with retryable errors:
 *   1. the route's candidates in `RoutePlan.order()`: the weighted pick, the other targets, the
 *      fallbacks. Moving to the next candidate is free: it is a first attempt somewhere else;
 *   2. within a candidate, first its endpoints not tried yet (no back-off: another replica is not
 *      the one that failed), and the same endpoint with another key after a key's 401/403/429;
 *   3. only on the last candidate, the same endpoint again after an exponential, jittered back-off
 *      honouring Retry-After and rate-limit reset headers.
 * Steps 2 and 3 are retries: each counts against `max_retries` (per candidate) and needs the
 * provider's retry budget. A failure outside `retry.on` is answered at once, wherever it happens,
 * except a key's 401/403 while the provider has another key. A timeout is never repeated on the
 * same endpoint (step 3): it already cost the client a whole timeout.
 */

import { GatewayError } from '../errors.js';
import { sharedClockMs } from '../shm/shared-clock.js';
import { EndpointMask } from './balancer.js';
import type { ProviderGroup } from './provider-group.js';
import { targetModel, type ResolvedRoute } from './model-router.js';
import { type PromptRequest, RequestPrompt } from './prefix-prompt.js';
import type { RouteTarget } from './route-plan.js';
import type { FailureKind, ResponseHeaders } from './retry-policy.js';

export interface SendStep {
  readonly kind: 'send';
  readonly target: RouteTarget;
  readonly group: ProviderGroup;
  /** Index into the group's endpoints. */
  readonly endpoint: number;
  /** Index of the API key; -1 for a keyless provider. */
  readonly key: number;
}

export type Step =
  | SendStep
  /** Wait this long, then ask `next()` again. */
  | { readonly kind: 'wait'; readonly ms: number }
  /** Nothing left to try: answer with this error (`retryAfterMs` becomes a Retry-After header). */
  | { readonly kind: 'fail'; readonly error: GatewayError; readonly retryAfterMs?: number };

export class AttemptPlanner {
  private readonly order: readonly RouteTarget[];
  private candidate = -1;
  private group: ProviderGroup | undefined;
  /** Endpoints of the current candidate that failed this request. */
  private tried = new EndpointMask(0);
  private readonly mask = new EndpointMask(0);
  private pickMask = this.mask;
  private readonly input: { excluded: EndpointMask | null; stickyKey: string | undefined; blocks: Float64Array | undefined };
  /** The request's prompt blocks, made on the first pick from a prefix-balanced group (never otherwise). */
  private prompt: RequestPrompt | undefined;
  private retries = 0;
  private waitMs = 0;
  private lastError: GatewayError | undefined;

  constructor(
    readonly route: ResolvedRoute,
    private readonly groups: ReadonlyMap<string, ProviderGroup>,
    stickyKey: string | undefined,
    private readonly now: () => number = sharedClockMs,
    /** Where the prompt comes from, for prefix-balanced groups (the request context itself). */
    private readonly request?: PromptRequest,
  ) {
    this.order = route.plan.order();
    this.input = { excluded: null, stickyKey, blocks: undefined };
  }

  /** The current candidate is one of the route's fallbacks (or a weight-0 standby target). */
  get onFallback(): boolean {
    return this.candidate >= this.route.plan.primaryCount;
  }

  /** Retries spent on the current candidate. */
  get retriesOnTarget(): number {
    return this.retries;
  }

  next(): Step {
    if (this.waitMs > 0) {
      const ms = this.waitMs;
      this.waitMs = 0;
      return { kind: 'wait', ms };
    }
    for (;;) {
      const group = this.group ?? this.advance();
      if (group === undefined) return this.exhausted();
      const endpoint = this.pickEndpoint(group);
      if (endpoint < 0) {
        this.group = undefined;
        continue;
      }
      const pool = group.keyPool;
      if (pool === null) return this.send(group, endpoint, -1);
      const key = pool.pick();
      if (key >= 0) return this.send(group, endpoint, key);
      // Every key rests or was refused: another candidate may have keys to spare.
      const nowMs = this.now();
      const availableAt = pool.nextAvailableAt(nowMs);
      if (this.hasNextCandidate()) {
        this.lastError ??= keysUnavailable(group, availableAt === Infinity);
        this.group = undefined;
        continue;
      }
      // Every key was refused (401/403) and nothing else is left: send with one anyway, so the client
      // gets the provider's own answer rather than the gateway's guess; a key fixed upstream works again.
      if (availableAt === Infinity) return this.send(group, endpoint, group.anyKey());
      const waitMs = Math.ceil(availableAt - nowMs);
      const policy = this.route.plan.retry;
      if (waitMs <= policy.maxRetryAfterMs && this.retries < policy.maxRetries && group.budget.tryAcquire()) {
        this.retries++;
        return { kind: 'wait', ms: waitMs };
      }
      return { kind: 'fail', error: this.lastError ?? keysUnavailable(group, false), retryAfterMs: waitMs };
    }
  }

  /**
   * After a failed attempt (its outcome already recorded on the group): true when another attempt
   * should follow (call `next()`), false when the error is the answer.
   */
  failed(step: SendStep, error: GatewayError, kind: FailureKind, status: number, headers: ResponseHeaders | undefined): boolean {
    this.lastError = error;
    const { group } = step;
    const policy = this.route.plan.retry;
    const keyFault = kind === 'status' && step.key >= 0 && (status === 401 || status === 403 || status === 429);
    const retryable = policy.isRetryable(kind, status);
    if (!retryable && !keyFault) return false;

    if (keyFault) {
      // The endpoint answered; the key is what failed. Another key at once, if one is left.
      if (group.keyPool!.pick() >= 0 && this.retries < policy.maxRetries && group.budget.tryAcquire()) {
        this.retries++;
        return true;
      }
      if (!retryable) return this.hasNextCandidate() ? this.moveOn() : false;
    } else {
      this.tried.add(step.endpoint);
    }

    if (this.hasUntriedEndpoint(group) && this.retries < policy.maxRetries && group.budget.tryAcquire()) {
      this.retries++;
      return true;
    }
    if (this.hasNextCandidate()) return this.moveOn();
    // Waiting out another whole timeout on the endpoint that just timed out would multiply the
    // client's wait; a timeout is retried on other endpoints and targets only.
    if (kind === 'timeout') return false;
    if (this.retries >= policy.maxRetries || !group.budget.tryAcquire()) return false;
    const delay = policy.delayMs(this.retries + 1, headers);
    if (delay < 0) return false;
    this.retries++;
    this.waitMs = delay;
    return true;
  }

  private moveOn(): boolean {
    this.group = undefined;
    return true;
  }

  private send(group: ProviderGroup, endpoint: number, key: number): SendStep {
    return { kind: 'send', target: this.order[this.candidate]!, group, endpoint, key };
  }

  private hasNextCandidate(): boolean {
    for (let i = this.candidate + 1; i < this.order.length; i++) if (this.groups.has(this.order[i]!.provider.name)) return true;
    return false;
  }

  private advance(): ProviderGroup | undefined {
    while (++this.candidate < this.order.length) {
      const group = this.groups.get(this.order[this.candidate]!.provider.name);
      if (group === undefined) continue;
      this.group = group;
      this.retries = 0;
      const n = group.endpoints.length;
      if (this.tried.capacity !== n) {
        this.tried = new EndpointMask(n);
        this.pickMask = new EndpointMask(n);
      } else {
        this.tried.clear();
      }
      group.budget.recordRequest();
      return group;
    }
    return undefined;
  }

  /**
   * An endpoint of the group not tried and not ejected; on the last candidate, failing that, a tried
   * one again, and failing that (everything ejected) any: refusing the client outright would be
   * worse than trying an endpoint that may have recovered. -1 when the candidate has nothing.
   */
  private pickEndpoint(group: ProviderGroup): number {
    const mask = this.pickMask;
    const input = this.input;
    input.excluded = mask;
    input.blocks = group.prefix === null ? undefined : this.promptBlocks(group.prefix.blockSize);
    mask.clear();
    for (let i = 0; i < group.endpoints.length; i++) if (this.tried.has(i)) mask.add(i);
    group.excludeUnavailable(mask);
    let picked = group.pick(input);
    if (picked === undefined && !this.hasNextCandidate()) {
      mask.clear();
      group.excludeUnavailable(mask);
      picked = group.pick(input);
      if (picked === undefined) {
        input.excluded = null;
        picked = group.pick(input);
      }
    }
    if (picked === undefined && this.tried.size === 0) {
      this.lastError ??= new GatewayError('upstream_unavailable', `no endpoint of provider ${group.provider.name} is available`);
    }
    return picked === undefined ? -1 : picked.index;
  }

  private promptBlocks(blockSize: number): Float64Array | undefined {
    if (this.request === undefined) return undefined;
    this.prompt ??= new RequestPrompt(this.request.protocol, this.request.op, this.request.body);
    return this.prompt.blocks(blockSize, targetModel(this.order[this.candidate]!, this.route));
  }

  private hasUntriedEndpoint(group: ProviderGroup): boolean {
    const mask = this.pickMask;
    mask.clear();
    for (let i = 0; i < group.endpoints.length; i++) if (this.tried.has(i)) mask.add(i);
    group.excludeUnavailable(mask);
    for (const e of group.endpoints) if (e.weight > 0 && !mask.has(e.index)) return true;
    return false;
  }

  private exhausted(): Step {
    return {
      kind: 'fail',
      error: this.lastError ?? new GatewayError('upstream_unavailable', `no provider of route ${this.route.plan.name} is available`),
    };
  }
}

function keysUnavailable(group: ProviderGroup, invalid: boolean): GatewayError {
  return invalid
    ? new GatewayError('upstream_error', `every API key of provider ${group.provider.name} was refused by it`, { status: 502 })
    : new GatewayError('rate_limited', `every API key of provider ${group.provider.name} is rate-limited`);
}

