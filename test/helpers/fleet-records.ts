import type { ArtifactRecord, NewDeployment } from '../../fleet/store/index.js';

/** Records for store tests: an artifact and a deployment of it, as fleet/artifacts and fleet/deployments make them. */
export function artifactRecord(n: number, profile = 'x86_64:avx2'): ArtifactRecord {
  const sha256 = n.toString(16).padStart(64, '0');
  return {
    sha256,
    name: 'cnn',
    version: '1.0.0',
    target: { profile, arch: profile.split(':')[0] ?? 'any' },
    bytes: 1000 + n,
    blockSize: 65_536,
    streamId: `a-${sha256.slice(-16)}`,
    streamVersion: 1,
    files: [
      { fileId: 0, sha256: 'f'.repeat(64), bytes: 100, role: 'index' },
      { fileId: 1, sha256, bytes: 1000 + n, role: 'archive' },
    ],
    createdMs: 1_700_000_000_000 + n,
  };
}

export function newDeployment(
  id: string,
  artifacts: readonly ArtifactRecord[],
  nowMs = 1_700_000_000_000,
): NewDeployment {
  return {
    id,
    model: 'cnn',
    version: '1.0.0',
    target: { things: ['a'] },
    strategy: { type: 'all-at-once' },
    options: { keepVersions: 2 },
    artifacts: artifacts.map((a) => a.sha256),
    documents: Object.fromEntries(
      artifacts.map((a) => [a.sha256, { operation: 'outpost.deploy', streamId: a.streamId }]),
    ),
    nowMs,
  };
}
