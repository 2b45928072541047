import { createHash, timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';

const sha256 = (value: string) => createHash('sha256').update(value).digest();

/** A value that must never reach logs, errors or metrics: it prints as [redacted] everywhere except reveal(). */
export class Secret {
  readonly #value: string;
  #hash: Buffer | undefined;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  /** Whether candidate is the secret, compared in constant time over sha256 hashes: neither timing nor length leaks. */
  matches(candidate: string): boolean {
    this.#hash ??= sha256(this.#value);
    return timingSafeEqual(sha256(candidate), this.#hash);
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [inspect.custom](): string {
    return '[redacted]';
  }
}
