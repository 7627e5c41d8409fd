import type { Command } from 'commander';
import {
  DEFAULT_PROFILES,
  TARGET_PROFILES,
  detectHost,
  type HostDetection,
  type QuantizationFormat,
  type TargetProfile,
} from '../../compiler/index.js';
import { messageOf } from '../../runtime/errors.js';
import { print, printJson, table } from '../output.js';

interface TargetsOptions {
  json?: boolean;
}

/** Activations then weights, in the notation of ORT's quantisation guide (`U8S8`), and what differs from the usual. */
function quantLabel(q: QuantizationFormat): string {
  const letters = (t: 'uint8' | 'int8') => (t === 'uint8' ? 'U8' : 'S8');
  return `${letters(q.activations)}${letters(q.weights)}${q.reduceRange ? ' reduce-range' : ''}${q.perChannel ? '' : ' per-tensor'}`;
}

function hostDetection(): HostDetection | { error: string } {
  try {
    return detectHost();
  } catch (error) {
    return { error: messageOf(error) };
  }
}

function printTable(profiles: readonly TargetProfile[], host: HostDetection | { error: string }): void {
  const defaults = new Set(Object.values(DEFAULT_PROFILES));
  const hostKey = 'profile' in host ? host.profile.key : undefined;
  const rows = profiles.map((p) => [
    `${p.key}${defaults.has(p.key) ? ' *' : ''}${p.key === hostKey ? ' (host)' : ''}`,
    p.arch,
    p.cpu,
    p.features.join(','),
    p.precisions.join(','),
    p.executionProviders.join(','),
    quantLabel(p.quantization),
    p.wasmFallback ? 'yes' : 'no',
    p.description,
  ]);
  print(table(['target', 'arch', 'cpu', 'features', 'precisions', 'providers', 'int8 format', 'wasm', 'for'], rows));
  print('');
  print(
    'int8 format: activation and weight types of QDQ quantisation (ORT notation), per-channel weights unless noted',
  );
  print(
    `* default for --target ${Object.entries(DEFAULT_PROFILES)
      .map(([family, key]) => `${family} (= ${key})`)
      .join(', ')}`,
  );
  print(
    'error' in host
      ? `--target host: ${host.error}`
      : `--target host: ${host.profile.key} (${host.evidence.slice(1, -1).join('; ')})`,
  );
}

export function register(program: Command): void {
  program
    .command('targets')
    .description('list the target profiles --target accepts: architecture, features, precisions, providers')
    .option('--json', 'print JSON')
    .action((opts: TargetsOptions) => {
      const profiles = Object.values(TARGET_PROFILES);
      const host = hostDetection();
      if (opts.json === true) {
        printJson({
          profiles,
          defaults: DEFAULT_PROFILES,
          host: 'error' in host ? { error: host.error } : { profile: host.profile.key, evidence: host.evidence },
        });
      } else {
        printTable(profiles, host);
      }
    });
}
