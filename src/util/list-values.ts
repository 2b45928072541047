/** Values given repeatedly and/or comma-separated (`--platform a,b --platform c`), trimmed, empty ones dropped. */
export function listValues(values: readonly string[]): string[] {
  return values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
}
