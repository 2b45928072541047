import { expect } from 'vitest';
import type { JobView } from '../../src/admin/jobs.js';
import { eventually } from './eventually.js';
import type { TestMirror } from './mirror.js';

export const ADMIN_TOKEN = 'unit-test-admin-token-0123456789';
export const ADMIN_ENV = { ACR_MIRROR_ADMIN_TOKEN: ADMIN_TOKEN };
export const bearer = (token = ADMIN_TOKEN) => ({ authorization: `Bearer ${token}` });

export async function startWarm(m: TestMirror, body: unknown): Promise<JobView> {
  const res = await m.request('/admin/warm', { method: 'POST', headers: { ...bearer(), 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (res.status !== 202) throw new Error(`warm refused: ${res.status} ${await res.text()}`);
  return (await res.json()) as JobView;
}

export async function getJob(m: TestMirror, id: string): Promise<JobView> {
  const res = await m.request(`/admin/jobs/${id}`, { headers: bearer() });
  if (res.status !== 200) throw new Error(`job ${id}: ${res.status} ${await res.text()}`);
  return (await res.json()) as JobView;
}

/** Polls the job until it is no longer running. */
export function finishedJob(m: TestMirror, id: string, timeoutMs = 10_000): Promise<JobView> {
  return eventually(
    async () => {
      const job = await getJob(m, id);
      expect(job.state, JSON.stringify(job)).not.toBe('running');
      return job;
    },
    { timeoutMs, intervalMs: 10, message: `job ${id} still running` },
  );
}
