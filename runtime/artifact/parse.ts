import type { z } from 'zod';
import { OutpostError, messageOf } from '../errors.js';
import { MANIFEST_FILE, SIGNATURE_FILE, SUPPORTED_SCHEMA_VERSIONS, manifestSchema, type Manifest } from './manifest.js';

/**
 * Untrusted manifest JSON → a `Manifest` whose references all agree with each other. Order matters: the schema
 * version is read before zod runs, so a manifest from a newer Outpost fails as ARTIFACT_SCHEMA_UNSUPPORTED (upgrade
 * the runtime) instead of as a pile of unrelated schema errors.
 */

/** One problem, located by a field path such as `variants[0].sha256` or `files["labels.txt"]`. */
export interface ManifestProblem {
  path: string;
  message: string;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Bytes of manifest.json → its raw JSON value (what the signature covers) and the validated manifest. */
export function parseManifestBytes(bytes: Uint8Array): { raw: unknown; manifest: Manifest } {
  let raw: unknown;
  try {
    raw = JSON.parse(UTF8.decode(bytes));
  } catch (error) {
    throw new OutpostError(
      'ARTIFACT_MANIFEST_INVALID',
      `${MANIFEST_FILE} is not valid UTF-8 JSON: ${messageOf(error)}`,
      {
        cause: error,
        details: { path: '(root)' },
      },
    );
  }
  return { raw, manifest: validateManifest(raw) };
}

/** Schema version → zod schema → cross-references. Throws ARTIFACT_SCHEMA_UNSUPPORTED or ARTIFACT_MANIFEST_INVALID. */
export function validateManifest(raw: unknown): Manifest {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalid([{ path: '(root)', message: 'expected a JSON object' }]);
  }
  const version = (raw as { schemaVersion?: unknown }).schemaVersion;
  if (typeof version !== 'number' || !Number.isInteger(version)) {
    throw invalid([
      {
        path: 'schemaVersion',
        message: `expected an integer, got ${version === undefined ? 'nothing' : JSON.stringify(version)}`,
      },
    ]);
  }
  if (!SUPPORTED_SCHEMA_VERSIONS.includes(version)) {
    throw new OutpostError(
      'ARTIFACT_SCHEMA_UNSUPPORTED',
      `${MANIFEST_FILE} has schemaVersion ${version}; this runtime reads ${SUPPORTED_SCHEMA_VERSIONS.join(', ')}`,
      { details: { schemaVersion: version, supported: SUPPORTED_SCHEMA_VERSIONS } },
    );
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) throw invalid(parsed.error.issues.map(fromZodIssue));
  const problems = crossReferenceProblems(parsed.data);
  if (problems.length > 0) throw invalid(problems);
  return parsed.data;
}

/**
 * What zod cannot see field by field: every file the manifest mentions is one it covers with a hash, and variants
 * repeat exactly the sha256/bytes that `files` records for their file (a device may check either).
 */
export function crossReferenceProblems(manifest: Manifest): ManifestProblem[] {
  const problems: ManifestProblem[] = [];
  const { files } = manifest;
  const folded = new Map<string, string>();
  for (const path of Object.keys(files)) {
    if (path === MANIFEST_FILE || path === SIGNATURE_FILE) {
      problems.push({ path: `files${key(path)}`, message: `${path} cannot cover itself; list only the other files` });
    }
    // Two names that differ only in case are one file on macOS and Windows filesystems.
    const other = folded.get(path.toLowerCase());
    if (other !== undefined) {
      problems.push({ path: `files${key(path)}`, message: `differs from "${other}" only in letter case` });
    }
    folded.set(path.toLowerCase(), path);
  }
  const covered = (path: string, where: string): void => {
    if (!Object.hasOwn(files, path)) problems.push({ path: where, message: `"${path}" is not listed in files` });
  };

  const ids = new Set<string>();
  manifest.variants.forEach((variant, i) => {
    const at = `variants[${i}]`;
    if (ids.has(variant.id)) problems.push({ path: `${at}.id`, message: `duplicate variant id "${variant.id}"` });
    ids.add(variant.id);
    if (!variant.file.endsWith(`.${variant.format}`)) {
      problems.push({ path: `${at}.file`, message: `format is "${variant.format}" but the file is "${variant.file}"` });
    }
    const entry = Object.hasOwn(files, variant.file) ? files[variant.file] : undefined;
    if (entry === undefined) {
      covered(variant.file, `${at}.file`);
      return;
    }
    if (entry.sha256 !== variant.sha256) {
      problems.push({
        path: `${at}.sha256`,
        message: `${variant.sha256} disagrees with files${key(variant.file)}.sha256 ${entry.sha256}`,
      });
    }
    if (entry.bytes !== variant.bytes) {
      problems.push({
        path: `${at}.bytes`,
        message: `${variant.bytes} disagrees with files${key(variant.file)}.bytes ${entry.bytes}`,
      });
    }
  });

  if (manifest.pipeline.labels !== undefined) covered(manifest.pipeline.labels, 'pipeline.labels');
  // A pipeline's bundled models are model artifacts inside it: their manifests are files it covers.
  for (const [model, source] of Object.entries(manifest.cascade?.models ?? {})) {
    if ('dir' in source) covered(`${source.dir}/${MANIFEST_FILE}`, `cascade.models${key(model)}.dir`);
  }
  const caseIds = new Set<string>();
  manifest.testVectors?.cases.forEach((testCase, i) => {
    const at = `testVectors.cases[${i}]`;
    if (caseIds.has(testCase.id))
      problems.push({ path: `${at}.id`, message: `duplicate test case id "${testCase.id}"` });
    caseIds.add(testCase.id);
    for (const [tensor, path] of Object.entries(testCase.inputs)) covered(path, `${at}.inputs${key(tensor)}`);
    for (const [tensor, path] of Object.entries(testCase.outputs)) covered(path, `${at}.outputs${key(tensor)}`);
    for (const [tensor, path] of Object.entries(testCase.elements ?? {})) {
      covered(path, `${at}.elements${key(tensor)}`);
      if (!Object.hasOwn(testCase.outputs, tensor))
        problems.push({ path: `${at}.elements${key(tensor)}`, message: `samples "${tensor}", which outputs lacks` });
    }
  });
  return problems;
}

/** Zod's path (`["variants", 0, "sha256"]`) in the notation our messages use (`variants[0].sha256`). */
export function formatFieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'symbol') out += `[${segment.toString()}]`;
    else out += out === '' && /^[A-Za-z_$][\w$]*$/.test(segment) ? segment : key(segment);
  }
  return out === '' ? '(root)' : out;
}

function key(name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`;
}

function fromZodIssue(issue: z.core.$ZodIssue): ManifestProblem {
  return { path: formatFieldPath(issue.path), message: issue.message };
}

function invalid(problems: ManifestProblem[]): OutpostError {
  const [first] = problems;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''})` : '';
  return new OutpostError(
    'ARTIFACT_MANIFEST_INVALID',
    `${MANIFEST_FILE}: ${first?.path ?? '(root)'}: ${first?.message ?? 'invalid'}${more}`,
    { details: { path: first?.path, problems } },
  );
}
