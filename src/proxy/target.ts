import type { RegistryClient } from '../upstream/client.js';

/** A request's destination after routing: which upstream, and the repository name there. */
export interface UpstreamTarget {
  client: RegistryClient;
  repo: string;
}
