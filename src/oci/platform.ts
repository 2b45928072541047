/** An image platform as OCI indexes describe it. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** What a warm asks for: every manifest of an index, or the children matching these platforms. */
export type PlatformChoice = 'all' | Platform[];

const PLATFORM_RE = /^([a-z0-9]+)\/([a-z0-9_]+)(?:\/([a-z0-9]+))?$/;

/** "linux/amd64", "linux/arm64/v8" -> Platform; null when malformed. */
export function parsePlatform(value: string): Platform | null {
  const m = PLATFORM_RE.exec(value.trim().toLowerCase());
  if (!m) return null;
  return { os: m[1]!, architecture: m[2]!, ...(m[3] ? { variant: m[3] } : {}) };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, ...(p.variant ? [p.variant] : [])].join('/');
}

/**
 * Whether an index entry's platform is the one asked for. A request without a variant takes any variant;
 * arm64 entries without a variant are v8 (what Docker and containerd assume).
 */
export function platformMatches(wanted: Platform, entry: Platform): boolean {
  if (wanted.os !== entry.os || wanted.architecture !== entry.architecture) return false;
  if (!wanted.variant) return true;
  const variant = entry.variant ?? (entry.architecture === 'arm64' ? 'v8' : undefined);
  return wanted.variant === variant;
}
