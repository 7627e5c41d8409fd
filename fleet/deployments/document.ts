import { type JobDocument, createJobDocument } from '../../device-agent/protocol/index.js';
import { OutpostError } from '../../runtime/errors.js';
import type { ArtifactRecord, DeploymentDocumentOptions, StreamFileRecord } from '../store/index.js';
import { withOutpostErrors } from '../protocol-errors.js';

/**
 * The job document one artifact of a deployment travels with (docs/job-document.md), fixed at creation. Its stream
 * layout is the deployment's `layout`; by default `files` (the device fetches the signed manifest, then only the
 * variants it will run) where the artifact has that stream, else `archive` (artifacts stored before migration 7).
 */
export async function documentFor(artifact: ArtifactRecord, options: DeploymentDocumentOptions): Promise<JobDocument> {
  const layout = layoutFor(artifact, options);
  const arch = artifact.target.arch === 'x86_64' || artifact.target.arch === 'arm64' ? artifact.target.arch : 'any';
  const stream =
    layout === 'files' && artifact.delivery !== undefined
      ? filesStream(artifact, artifact.delivery.files, artifact.delivery.bytes, artifact.delivery.streamId)
      : archiveStream(artifact);
  return withOutpostErrors(() =>
    createJobDocument({
      model: { name: artifact.name, version: artifact.version },
      artifact: {
        streamVersion: artifact.streamVersion,
        blockSize: artifact.blockSize,
        ...stream,
        ...(artifact.manifestSha256 === undefined ? {} : { manifestSha256: artifact.manifestSha256 }),
      },
      target: { arch },
      ...(options.rollout === undefined ? {} : { rollout: options.rollout }),
      ...(options.keepVersions === undefined ? {} : { keepVersions: options.keepVersions }),
      ...(options.notes === undefined ? {} : { notes: options.notes }),
    }),
  );
}

/** The layout a deployment's option asks for, checked against what the artifact was stored with. */
export function layoutFor(artifact: ArtifactRecord, options: DeploymentDocumentOptions): 'archive' | 'files' {
  if (options.layout === 'archive') return 'archive';
  if (artifact.delivery !== undefined) return 'files';
  if (options.layout === 'files') {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `artifact ${artifact.name}@${artifact.version} (${artifact.target.profile}) was stored without a files-layout stream (before this fleet version, or more than 255 files): upload it again, or deploy it with layout archive`,
      { details: { sha256: artifact.sha256, accepted: ['archive'] } },
    );
  }
  return 'archive';
}

function roleOf(artifact: ArtifactRecord, files: readonly StreamFileRecord[], role: StreamFileRecord['role']) {
  const found = files.find((f) => f.role === role);
  if (found === undefined) throw new OutpostError('INTERNAL', `artifact ${artifact.sha256} has no ${role} file`);
  return found;
}

function archiveStream(artifact: ArtifactRecord) {
  const index = roleOf(artifact, artifact.files, 'index');
  const archive = roleOf(artifact, artifact.files, 'archive');
  return {
    streamId: artifact.streamId,
    fileId: archive.fileId,
    indexFileId: index.fileId,
    size: archive.bytes,
    sha256: archive.sha256,
    indexSize: index.bytes,
    indexSha256: index.sha256,
  };
}

function filesStream(artifact: ArtifactRecord, files: readonly StreamFileRecord[], bytes: number, streamId: string) {
  const index = roleOf(artifact, files, 'delivery');
  return {
    streamId,
    layout: 'files' as const,
    indexFileId: index.fileId,
    size: Math.max(1, bytes),
    indexSize: index.bytes,
    indexSha256: index.sha256,
  };
}
