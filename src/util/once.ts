/** fn, made safe to call more than once: only the first call runs it (releases of a slot, a hold, a reservation). */
export function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
