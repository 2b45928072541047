import { fetchFailure } from '../util/fetch-failure.js';

/** `acr-mirror healthcheck` (the container's HEALTHCHECK): 0 when the mirror answers /healthz, 1 with the reason otherwise. */
export async function healthcheck(url: string, stderr: NodeJS.WritableStream): Promise<number> {
  const target = `${url.replace(/\/+$/, '')}/healthz`;
  try {
    const res = await fetch(target);
    await res.body?.cancel();
    if (res.ok) return 0;
    stderr.write(`acr-mirror healthcheck: ${target} answered ${res.status}\n`);
  } catch (err) {
    stderr.write(`acr-mirror healthcheck: ${target}: ${fetchFailure(err)}\n`);
  }
  return 1;
}
