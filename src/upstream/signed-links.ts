import { checked, discard, linkRefused, type Arrival } from './answers.js';
import { BlobLocations, follow, type RedirectPolicy } from './redirects.js';
import type { Fetch, FetchInit, UpstreamResponse } from './transport.js';

export interface SignedBlobLinksDeps {
  fetch: Fetch;
  redirects: RedirectPolicy;
  now: () => number;
  label: string;
  /** The registry's GET of a blob, stopping where it redirects to storage (authenticated, redirects followed). */
  askRegistry(repo: string, digest: string, what: string, init: FetchInit): Promise<Arrival>;
}

/**
 * The signed storage links blobs redirect to, kept while valid (BlobLocations) so a resume or another range of a
 * blob does not ask the registry again, and renewed once for all the requests storage refused a link to.
 */
export class SignedBlobLinks {
  readonly #locations: BlobLocations;
  /** Registry requests under way for a blob's fresh signed link, by digest. */
  readonly #refreshing = new Map<string, Promise<URL | null>>();

  constructor(private readonly deps: SignedBlobLinksDeps) {
    this.#locations = new BlobLocations(deps.now);
  }

  /** The blob's valid stored link, or the one a refresh under way brings; null when there is none. */
  async stored(digest: string): Promise<URL | null> {
    return this.#locations.get(digest) ?? (await this.#refreshing.get(digest)) ?? null;
  }

  remember(digest: string, link: URL): void {
    this.#locations.set(digest, link);
  }

  /**
   * A blob's answer from its stored link if that still works, else through the registry (remembering the new
   * link). When storage refuses the link, the ranges of one fill that hit the refusal together share one fresh link:
   * one registry request, not one per range.
   */
  async response(repo: string, digest: string, what: string, init: FetchInit): Promise<UpstreamResponse> {
    const cached = this.#locations.get(digest);
    if (cached) {
      const stored = await this.#fromStorage(digest, cached, what, init);
      if (stored) return stored;
      // No await between the refusal and registering a refresh below unless one is under way already: another
      // range refused at the same moment must find this one's refresh.
      const shared = this.#sharedLink(digest, cached);
      const link = shared instanceof Promise ? await shared : shared;
      const again = link ? await this.#fromStorage(digest, link, what, init) : null;
      if (again) return again;
    }
    let announce!: (link: URL | null) => void;
    const refresh = new Promise<URL | null>((resolve) => (announce = resolve));
    this.#refreshing.set(digest, refresh);
    try {
      const arrival = await this.deps.askRegistry(repo, digest, what, init);
      if (!arrival.location) return checked(this.deps.label, this.deps.now(), arrival, what);
      this.#locations.set(digest, arrival.location);
      announce(arrival.location);
      const fresh = await follow(this.deps.fetch, arrival.location, what, init, this.deps.redirects, 'storage');
      if (linkRefused(fresh)) this.#locations.delete(digest);
      return checked(this.deps.label, this.deps.now(), fresh, what);
    } finally {
      announce(null);
      if (this.#refreshing.get(digest) === refresh) this.#refreshing.delete(digest);
    }
  }

  /** A link another request got since `refused` was refused: stored already, or the refresh under way, or null. */
  #sharedLink(digest: string, refused: URL): URL | Promise<URL | null> | null {
    const current = this.#locations.get(digest);
    if (current && current.href !== refused.href) return current;
    return this.#refreshing.get(digest) ?? null;
  }

  /** The answer from a signed link, or null when storage refused the link (then forgotten, unless replaced already). */
  async #fromStorage(digest: string, link: URL, what: string, init: FetchInit): Promise<UpstreamResponse | null> {
    const stored = await follow(this.deps.fetch, link, what, init, this.deps.redirects, 'storage');
    if (!linkRefused(stored)) return checked(this.deps.label, this.deps.now(), stored, what);
    await discard(stored.response!);
    if (this.#locations.get(digest)?.href === link.href) this.#locations.delete(digest);
    return null;
  }
}
