import type { Logger } from 'pino';
import type { ManifestStore } from '../cache/manifest-store.js';
import { upstreamUnavailable } from '../upstream/errors.js';
import type { UpstreamTarget } from './target.js';

export interface TagListPage {
  tags: string[];
  /** The last tag of this page when more follow. */
  next: string | null;
}

/** Tag lists come from the upstream; when it cannot be asked, from the tags this mirror has cached. */
export class TagService {
  constructor(
    private readonly store: ManifestStore,
    private readonly log: Logger,
  ) {}

  async list(target: UpstreamTarget, page: { n?: number; last?: string }): Promise<TagListPage> {
    try {
      const answer = await target.client.listTags(target.repo, page);
      // Some registries (Distribution 2.x) neither sort nor honour n/last: sort and paginate what they sent,
      // which is harmless when they did.
      const local = paginate([...answer.tags].sort(), page);
      if (local.next !== null || !answer.more) return local;
      return { tags: local.tags, next: local.tags.length ? local.tags[local.tags.length - 1]! : null };
    } catch (err) {
      if (!upstreamUnavailable(err)) throw err;
      const cached = this.store.listTags(target.client.name, target.repo);
      if (cached.length === 0) throw err;
      this.log.warn({ upstream: target.client.name, repo: target.repo, reason: err.message }, 'upstream unavailable; listing cached tags');
      return paginate(cached, page);
    }
  }
}

/** Pagination of a lexically sorted list as the distribution spec defines it (n, last). */
export function paginate(sorted: string[], page: { n?: number; last?: string }): TagListPage {
  const from = page.last === undefined ? 0 : sorted.findIndex((t) => t > page.last!);
  const rest = from < 0 ? [] : sorted.slice(from);
  if (page.n === undefined || rest.length <= page.n) return { tags: rest, next: null };
  const tags = rest.slice(0, page.n);
  return { tags, next: tags.length ? tags[tags.length - 1]! : null };
}
