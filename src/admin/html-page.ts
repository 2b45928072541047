import { randomBytes } from 'node:crypto';
import type { Context } from 'hono';
import type { loginPage } from './ui.js';

/** An HTML page whose own inline script and style may run, and nothing else. */
export function htmlPage(c: Context, render: (nonce: string) => ReturnType<typeof loginPage>, status: 200 | 401): Response | Promise<Response> {
  const nonce = randomBytes(16).toString('base64');
  c.header(
    'content-security-policy',
    `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  );
  c.header('cache-control', 'no-store');
  return c.html(render(nonce), status);
}
