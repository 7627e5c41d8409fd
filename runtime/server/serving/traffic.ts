/**
 * The weighted draw between production versions (SageMaker's production variants): each entry gets traffic in
 * proportion to its weight; only relative sizes matter. Shared by models (service.ts) and pipelines
 * (pipeline-service.ts), so a canary split means the same thing for both.
 */
export function weightedPick<T extends { readonly weight: number }>(
  entries: readonly T[],
  random: () => number,
): T | undefined {
  if (entries.length <= 1) return entries[0];
  const total = entries.reduce((sum, e) => sum + e.weight, 0);
  let draw = random() * total;
  for (const e of entries) {
    draw -= e.weight;
    if (draw < 0) return e;
  }
  return entries[entries.length - 1];
}
