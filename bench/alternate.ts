/** Alternated timing of benchmark variants (no imports: safe to use from any bench). */

/**
 * Times each variant `rounds` times, alternating them (the order reversed
 * every other round, so drift in the machine's load hits all alike), after
 * `warmup` untimed calls of each; milliseconds per variant.
 */
export async function alternateTimes(
  variants: Record<string, () => Promise<unknown>>,
  rounds: number,
  warmup: number,
): Promise<Record<string, number[]>> {
  const names = Object.keys(variants);
  const times: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
  for (let i = 0; i < warmup; i++) for (const k of names) await variants[k]();
  for (let i = 0; i < rounds; i++) {
    for (const k of i % 2 ? names : [...names].reverse()) {
      const t0 = performance.now();
      await variants[k]();
      times[k].push(performance.now() - t0);
    }
  }
  return times;
}
