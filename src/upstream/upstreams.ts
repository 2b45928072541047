import type { Logger } from 'pino';
import type { Config, UpstreamConfig } from '../config/load.js';
import { type Metrics, type UpstreamState, upstreamObserver } from '../observability/metrics.js';
import { CircuitBreaker } from './breaker.js';
import { RegistryClient } from './client.js';
import { AcrTemporaryCredentials, type CredentialSource, StaticCredentials } from './credentials.js';
import { type UpstreamHealth, upstreamHealth, type WatchedUpstream } from './health.js';
import { TokenCache } from './tokens.js';
import { createTransport, type Fetch, type Transport } from './transport.js';

export interface UpstreamClientDeps {
  log: Logger;
  metrics: Metrics;
  now: () => number;
  /** Replaces the network for every upstream (tests). */
  fetch?: Fetch;
  /** Replaces the wait between upstream retries (tests). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface UpstreamClients {
  /** One client per upstream name. */
  clients: Map<string, RegistryClient>;
  /** Up/down and last success/error per upstream name, for readiness and metrics. */
  states: Record<string, UpstreamState>;
  /** Each upstream's state, last success and error, and breaker, in configuration order (the admin page). */
  health(): UpstreamHealth[];
  /** Closes the connection pools. */
  close(): Promise<void>;
}

/** One RegistryClient per configured upstream: its transport, credentials, token cache and circuit breaker. */
export function createUpstreamClients(config: Config, deps: UpstreamClientDeps): UpstreamClients {
  const states: Record<string, UpstreamState> = {};
  const transports: Transport[] = [];
  const clients = new Map<string, RegistryClient>();
  const watched: WatchedUpstream[] = [];
  for (const upstream of Object.values(config.upstreams)) {
    let fetch = deps.fetch;
    if (!fetch) {
      const transport = transportFor(upstream);
      transports.push(transport);
      fetch = transport.fetch;
    }
    const offline = config.cache.offline || upstream.offline;
    const state: UpstreamState = (states[upstream.name] = { status: offline ? 'offline' : 'up', lastSuccess: null, lastError: null });
    deps.metrics.upstreamUp.set({ upstream: upstream.name }, offline ? 0 : 1);
    const breaker = breakerFor(upstream, state, deps);
    watched.push({ name: upstream.name, url: upstream.url, state, breaker });
    clients.set(
      upstream.name,
      new RegistryClient(upstream, {
        fetch,
        breaker,
        offline,
        // Never used: an offline upstream is not contacted, and its secrets need not be configured.
        credentials: offline ? new StaticCredentials(undefined) : credentialsFor(upstream, deps),
        tokens: new TokenCache({ now: deps.now, marginMs: upstream.token_margin }),
        now: deps.now,
        observer: upstreamObserver(deps.metrics, upstream.name, state, deps.now),
        log: deps.log.child({ upstream: upstream.name }),
        ...(deps.sleep ? { sleep: deps.sleep } : {}),
      }),
    );
  }
  return { clients, states, health: () => watched.map(upstreamHealth), close: async () => void (await Promise.all(transports.map((t) => t.close()))) };
}

function transportFor(upstream: UpstreamConfig): Transport {
  return createTransport({
    connectTimeoutMs: upstream.connect_timeout,
    responseTimeoutMs: upstream.response_timeout,
    idleTimeoutMs: upstream.idle_timeout,
    hosts: upstream.hosts,
    insecure: upstream.insecure,
    ...(upstream.ca_file ? { caFile: upstream.ca_file } : {}),
    ...(upstream.proxy !== undefined ? { proxy: upstream.proxy } : {}),
  });
}

function credentialsFor(upstream: UpstreamConfig, deps: UpstreamClientDeps): CredentialSource {
  if (!upstream.temporaryCredentials) return new StaticCredentials(upstream.credentials);
  return new AcrTemporaryCredentials(upstream.name, upstream.temporaryCredentials, {
    now: deps.now,
    log: deps.log,
    hosts: upstream.hosts,
    ...(upstream.ca_file ? { caFile: upstream.ca_file } : {}),
    timeoutMs: upstream.response_timeout,
  });
}

/** The breaker reports its changes: the upstream's state, the up metric and one log line each way. */
function breakerFor(upstream: UpstreamConfig, state: UpstreamState, deps: UpstreamClientDeps): CircuitBreaker {
  const { log, metrics } = deps;
  return new CircuitBreaker({
    threshold: upstream.breaker_threshold,
    cooldownMs: upstream.breaker_cooldown,
    maxCooldownMs: upstream.breaker_max_cooldown,
    now: deps.now,
    onChange: (up, detail) => {
      state.status = up ? 'up' : 'down';
      metrics.upstreamUp.set({ upstream: upstream.name }, up ? 1 : 0);
      if (up) log.info({ upstream: upstream.name }, 'upstream is back up');
      else log.warn({ upstream: upstream.name, failures: detail.failures, retryInMs: detail.retryInMs }, 'upstream marked down; serving from cache');
    },
  });
}
