import { readFileSync } from 'node:fs';
import { OutpostError, messageOf } from '../errors.js';
import { imagePreprocessSchema, type ImagePreprocess } from '../artifact/manifest.js';

const RESIZE = Object.freeze({
  stretch: 'stretch',
  letterbox: 'letterbox',
  'center-crop': 'center-crop',
  crop: 'center-crop',
} as const);

/**
 * `--preprocess`: an image pre-processing spec, as JSON (inline or `@file.json`) or as `key=value` pairs:
 *
 *   size=224x224,resize=center-crop,color=RGB,mean=0.485:0.456:0.406,std=0.229:0.224:0.225,layout=NCHW
 *
 * Keys: size (WxH), resize (stretch|letterbox|center-crop), color (RGB|BGR|GRAY), layout (NCHW|NHWC),
 * dtype (float32|uint8), scale (default 1/255), mean, std (per channel, ':'-separated), input (tensor name).
 * The same schema is recorded in the artifact's pipeline, so the device pre-processes exactly as calibration did.
 */
export function parsePreprocessSpec(text: string, defaultInput: string): ImagePreprocess {
  const raw = text.startsWith('{')
    ? parseJson(text, '--preprocess')
    : text.startsWith('@')
      ? parseJson(read(text.slice(1)), text.slice(1))
      : parsePairs(text);
  const parsed = imagePreprocessSchema.safeParse({ kind: 'image', input: defaultInput, ...raw });
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(spec)'}: ${i.message}`).join('; ');
    throw new OutpostError('INVALID_ARGUMENT', `--preprocess "${text}": ${issues}`);
  }
  return parsed.data;
}

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new OutpostError('FILE_UNREADABLE', `--preprocess @${path}: ${messageOf(error)}`, { cause: error });
  }
}

function parseJson(text: string, what: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch (error) {
    throw new OutpostError('INVALID_ARGUMENT', `${what}: not valid JSON: ${messageOf(error)}`, { cause: error });
  }
  throw new OutpostError('INVALID_ARGUMENT', `${what}: expected a JSON object`);
}

function parsePairs(text: string): Record<string, unknown> {
  const spec: Record<string, unknown> = {};
  const bad = (why: string) =>
    new OutpostError(
      'INVALID_ARGUMENT',
      `--preprocess "${text}": ${why}; e.g. size=224x224,resize=center-crop,mean=0.485:0.456:0.406,std=0.229:0.224:0.225`,
    );
  for (const part of text.split(',').filter((p) => p !== '')) {
    const [key, value] = part.split('=') as [string, string | undefined];
    if (value === undefined) throw bad(`"${part}" is not key=value`);
    const numbers = () => value.split(':').map(Number);
    switch (key) {
      case 'size': {
        const m = /^(\d+)x(\d+)$/.exec(value);
        if (m === null) throw bad(`size "${value}" is not WxH`);
        spec.width = Number(m[1]);
        spec.height = Number(m[2]);
        break;
      }
      case 'resize':
        if (!Object.hasOwn(RESIZE, value))
          throw bad(`resize "${value}" is not one of ${Object.keys(RESIZE).join(', ')}`);
        spec.resize = RESIZE[value as keyof typeof RESIZE];
        break;
      case 'color':
        spec.colorOrder = value.toUpperCase();
        break;
      case 'layout':
        spec.layout = value.toUpperCase();
        break;
      case 'dtype':
      case 'input':
        spec[key] = value;
        break;
      case 'scale':
        spec.scale = Number(value);
        break;
      case 'mean':
      case 'std':
        spec[key] = numbers();
        break;
      default:
        throw bad(`unknown key "${key}" (size, resize, color, layout, dtype, scale, mean, std, input)`);
    }
  }
  return spec;
}
