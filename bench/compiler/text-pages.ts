import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { float32ToFloat16 } from '../../runtime/tensor/float16.js';
import { encodeNpy } from '../../runtime/tensor/npy.js';
import { seededRandom } from '../../runtime/tensor/tensor.js';

/**
 * Rendered document pages for calibrating and grading PaddleOCR's detector without a dataset: several lines of real
 * text (SVG rendered by sharp's librsvg with the system's fonts) at varied sizes, positions, ink and paper tones on a
 * square page, saved as the detector's input tensor. Deterministic for a given seed and font set.
 *
 * Normalisation is PaddleOCR's for detection (ppocr/data/imaug/operators.py, NormalizeImage with the det configs'
 * ImageNet mean/std, scale 1/255, on the BGR image cv2 reads), then HWC → CHW: a [1, 3, size, size] float32 tensor.
 */
export const PADDLE_DET_MEAN = Object.freeze([0.485, 0.456, 0.406]);
export const PADDLE_DET_STD = Object.freeze([0.229, 0.224, 0.225]);

const WORDS = Object.freeze([
  'Outpost',
  'edge inference',
  'ONNX Runtime',
  'MQTT 5.0',
  'Raspberry Pi 5',
  'invoice 2024-07',
  'TOTAL 42.50 EUR',
  'quantise int8',
  'Jetson Orin',
  'shipping label',
  'Route 66',
  'receipt #0193',
  'fp16 weights',
  'cosine 0.999',
  'ARM64 NEON',
  'delivery note',
]);

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** One page as SVG: 6–9 lines of words, each with its own size, indent and ink. */
export function pageSvg(index: number, size: number): string {
  const random = seededRandom(1000 + index);
  const pick = () => WORDS[Math.floor(random() * WORDS.length)] ?? 'text';
  const paper = 225 + Math.floor(random() * 30);
  const lines: string[] = [];
  const count = 6 + Math.floor(random() * 4);
  for (let i = 0; i < count; i++) {
    const fontSize = Math.round(size * (0.035 + random() * 0.035));
    const y = Math.round(((i + 1) * size) / (count + 1));
    const x = Math.round(random() * size * 0.2);
    const ink = Math.floor(random() * 80);
    const family = random() < 0.5 ? 'DejaVu Sans' : 'DejaVu Serif';
    const text = escapeXml(`${pick()} ${pick()}${random() < 0.5 ? ` ${pick()}` : ''}`);
    lines.push(
      `<text x="${x}" y="${y}" font-family="${family}" font-size="${fontSize}" fill="rgb(${ink},${ink},${ink + 10})">${text}</text>`,
    );
  }
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}">` +
    `<rect width="${size}" height="${size}" fill="rgb(${paper},${paper - 4},${paper - 12})"/>${lines.join('')}</svg>`
  );
}

/** The page as PaddleOCR's detector input: BGR, (x/255 − mean) / std, CHW. */
export async function pageTensor(index: number, size = 640): Promise<Float32Array> {
  const { data } = await sharp(Buffer.from(pageSvg(index, size)))
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const rgb = data[p * 3 + (2 - c)] ?? 0; // channel c of BGR is RGB channel 2 − c
      out[c * plane + p] = (rgb / 255 - (PADDLE_DET_MEAN[c] ?? 0)) / (PADDLE_DET_STD[c] ?? 1);
    }
  }
  return out;
}

/**
 * Writes `count` pages as `page000.npy`, … ([1, 3, size, size], float32 or, for models exported in float16, float16)
 * into `dir`; returns `dir`.
 */
export async function writeTextPages(
  dir: string,
  count: number,
  size = 640,
  dtype: 'float32' | 'float16' = 'float32',
): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    const data = await pageTensor(i, size);
    await writeFile(
      join(dir, `page${String(i).padStart(3, '0')}.npy`),
      dtype === 'float32'
        ? encodeNpy({ dtype, shape: [1, 3, size, size], data })
        : encodeNpy({ dtype, shape: [1, 3, size, size], data: float32ToFloat16(data) }),
    );
  }
  return dir;
}

/** The same pages as PNG files (to look at them). */
export async function writeTextPagePngs(dir: string, count: number, size = 640): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    await sharp(Buffer.from(pageSvg(i, size)))
      .png()
      .toFile(join(dir, `page${String(i).padStart(3, '0')}.png`));
  }
  return dir;
}
