import { createRequire } from 'node:module';

/** Outpost's own version, written into every artifact's producer field. */
export const OUTPOST_VERSION: string = (() => {
  const require = createRequire(import.meta.url);
  // Source runs from <root>/runtime, the bundle from <root>/dist: try both.
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      const pkg = require(candidate) as { name?: string; version?: string };
      if (pkg.name === 'outpost' && pkg.version !== undefined) return pkg.version;
    } catch {
      // not at this depth
    }
  }
  return '0.0.0';
})();
