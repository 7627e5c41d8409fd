import { type JobDocument, createJobDocument } from '../../device-agent/protocol/index.js';
import type { ArtifactRecord, DeploymentDocumentOptions } from '../store/index.js';
import { withOutpostErrors } from '../protocol-errors.js';

/** The job document one artifact of a deployment travels with (docs/job-document.md), fixed at creation. */
export async function documentFor(artifact: ArtifactRecord, options: DeploymentDocumentOptions): Promise<JobDocument> {
  const file = (role: 'index' | 'archive') => {
    const found = artifact.files.find((f) => f.role === role);
    if (found === undefined) throw new Error(`artifact ${artifact.sha256} has no ${role} file`);
    return found;
  };
  const index = file('index');
  const archive = file('archive');
  const arch = artifact.target.arch === 'x86_64' || artifact.target.arch === 'arm64' ? artifact.target.arch : 'any';
  return withOutpostErrors(() =>
    createJobDocument({
      model: { name: artifact.name, version: artifact.version },
      artifact: {
        streamId: artifact.streamId,
        streamVersion: artifact.streamVersion,
        fileId: archive.fileId,
        indexFileId: index.fileId,
        size: archive.bytes,
        sha256: archive.sha256,
        indexSize: index.bytes,
        indexSha256: index.sha256,
        blockSize: artifact.blockSize,
        ...(artifact.manifestSha256 === undefined ? {} : { manifestSha256: artifact.manifestSha256 }),
      },
      target: { arch },
      ...(options.rollout === undefined ? {} : { rollout: options.rollout }),
      ...(options.keepVersions === undefined ? {} : { keepVersions: options.keepVersions }),
      ...(options.notes === undefined ? {} : { notes: options.notes }),
    }),
  );
}
