import { OutpostError } from '../../runtime/errors.js';
import type { GroupClause, ThingRecord } from '../store/index.js';

/**
 * Dynamic groups: `--where arch=arm64,cpu=cortex-a72,attr.site=plant-3` — every clause must hold. Keys: `arch`
 * (x86_64 | arm64), `target` (a whole profile key, e.g. cuda:sm_87), `cpu` (the part after the colon of the thing's
 * profile or its CPU profile, e.g. cortex-a72, avx2, sm_87), `model` (an active model's name) and `attr.<name>`
 * (an operator attribute). Evaluated when a deployment starts, and again for every thing that reports later.
 */
export const QUERY_KEYS = Object.freeze(['arch', 'target', 'cpu', 'model', 'attr.<name>'] as const);
const ATTRIBUTE_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
const VALUE = /^[^,=\s]{1,128}$/;

export function parseQuery(text: string): GroupClause[] {
  const clauses = text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
  if (clauses.length === 0) throw invalid(text, 'no clause');
  return clauses.map((clause) => {
    const eq = clause.indexOf('=');
    const key = eq < 0 ? clause : clause.slice(0, eq).trim();
    const value = eq < 0 ? '' : clause.slice(eq + 1).trim();
    const knownKey =
      ['arch', 'target', 'cpu', 'model'].includes(key) ||
      (key.startsWith('attr.') && ATTRIBUTE_NAME.test(key.slice(5)));
    if (!knownKey) throw invalid(text, `unknown key "${key}"`);
    if (!VALUE.test(value)) throw invalid(text, `"${clause}" needs a value (key=value)`);
    return { key, value };
  });
}

function invalid(text: string, why: string): OutpostError {
  return new OutpostError(
    'INVALID_ARGUMENT',
    `--where ${JSON.stringify(text)}: ${why}; expected key=value,… with keys ${QUERY_KEYS.join(', ')}`,
    {
      details: { where: text, accepted: QUERY_KEYS },
    },
  );
}

const cpuOf = (profile: string | undefined): string | undefined => profile?.split(':')[1];

export function matches(thing: ThingRecord, where: readonly GroupClause[]): boolean {
  return where.every(({ key, value }) => {
    const { target } = thing;
    switch (key) {
      case 'arch':
        return target.arch === value;
      case 'target':
        return target.profile === value || target.cpuProfile === value;
      case 'cpu':
        return cpuOf(target.profile) === value || cpuOf(target.cpuProfile) === value;
      case 'model':
        return thing.models.some((m) => m.model === value);
      default:
        return key.startsWith('attr.') && thing.attributes[key.slice(5)] === value;
    }
  });
}

export function formatQuery(where: readonly GroupClause[]): string {
  return where.map((c) => `${c.key}=${c.value}`).join(',');
}
