import type { Listeners } from '../config/load.js';

/**
 * Where a command on this machine reaches the mirror its configuration describes: the plain listener, over loopback
 * when it listens on every address; if the plain listener is bound to another machine-facing address and HTTPS is
 * served too, the HTTPS listener, so that the admin token does not cross the network in clear.
 */
export function mirrorUrl(listeners: Pick<Listeners, 'listen' | 'tls_listen'>): string {
  const plain = fromThisMachine(listeners.listen, 'http');
  if (isLoopback(plain.hostname) || !listeners.tls_listen) return plain.origin;
  return fromThisMachine(listeners.tls_listen, 'https').origin;
}

const WILDCARD_TO_LOOPBACK: Record<string, string> = { '0.0.0.0': '127.0.0.1', '[::]': '[::1]' };

function fromThisMachine(listen: string, scheme: 'http' | 'https'): URL {
  const url = new URL(`${scheme}://${listen}`);
  url.hostname = WILDCARD_TO_LOOPBACK[url.hostname] ?? url.hostname;
  return url;
}

const isLoopback = (host: string) => /^(127\.|\[::1\]$|localhost$)/.test(host);
