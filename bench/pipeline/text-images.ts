import sharp from 'sharp';
import { seededRandom } from '../../runtime/tensor/tensor.js';

/**
 * Rendered multi-line text images for grading an OCR pipeline without a dataset: 3–6 lines per image, each of 1–4
 * phrases, in DejaVu Sans or Serif at 18–40 px (TEXT_PAGE; TEXT_SNIPPET draws fewer, smaller lines), dark ink on light paper, left-aligned at varied indents, every line
 * inside the page (its width estimated at 0.62 em per character, DejaVu's average advance, plus a margin). PNG bytes
 * and the text of each line, top to bottom. Deterministic for a given index and font set (SVG via sharp's librsvg).
 */
const PHRASES = Object.freeze([
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
  'receipt 0193',
  'fp16 weights',
  'delivery note',
  'ARM64 NEON',
  'batch of crops',
]);

export interface TextImage {
  readonly png: Buffer;
  readonly lines: readonly string[];
}

/** What an image holds: lines per image, phrases per line (at most), font sizes in px (inclusive ranges). */
export interface TextImageShape {
  readonly lines: readonly [number, number];
  readonly phrases: number;
  readonly sizes: readonly [number, number];
}

/** The default: a page of 3–6 lines of 1–4 phrases at 18–40 px (the accuracy tests and bench/pipeline/ocr.ts). */
export const TEXT_PAGE: TextImageShape = Object.freeze<TextImageShape>({
  lines: [3, 6] as const,
  phrases: 4,
  sizes: [18, 40] as const,
});
/** A small image, ~450 × 130 px: 2–3 lines of 1–2 phrases at 16–24 px (bench/batch.ts --ocr-images: 200 of them). */
export const TEXT_SNIPPET: TextImageShape = Object.freeze<TextImageShape>({
  lines: [2, 3] as const,
  phrases: 2,
  sizes: [16, 24] as const,
});

export async function renderTextImage(index: number, shape: TextImageShape = TEXT_PAGE): Promise<TextImage> {
  const random = seededRandom(7000 + index);
  const span = (range: readonly [number, number]) => range[0] + Math.floor(random() * (range[1] - range[0] + 1));
  const count = span(shape.lines);
  const rows: { text: string; size: number; x: number; family: string; ink: number }[] = [];
  for (let i = 0; i < count; i++) {
    const phrases = 1 + Math.floor(random() * shape.phrases);
    const text = Array.from({ length: phrases }, () => PHRASES[Math.floor(random() * PHRASES.length)] ?? 'text').join(
      ' ',
    );
    rows.push({
      text,
      size: span(shape.sizes),
      x: 16 + Math.floor(random() * 48),
      family: random() < 0.5 ? 'DejaVu Sans' : 'DejaVu Serif',
      ink: Math.floor(random() * 60),
    });
  }
  const width = Math.ceil(Math.max(...rows.map((r) => r.x + r.text.length * r.size * 0.62)) + 32);
  let y = 16;
  const svgRows = rows.map((r) => {
    y += Math.round(r.size * 1.6);
    return `<text x="${r.x}" y="${y}" font-family="${r.family}" font-size="${r.size}" fill="rgb(${r.ink},${r.ink},${r.ink + 10})">${r.text}</text>`;
  });
  const height = y + 24;
  const paper = 235 + Math.floor(random() * 20);
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<rect width="${width}" height="${height}" fill="rgb(${paper},${paper - 3},${paper - 8})"/>${svgRows.join('')}</svg>`;
  return { png: await sharp(Buffer.from(svg)).png().toBuffer(), lines: rows.map((r) => r.text) };
}

/** Levenshtein distance (insertions, deletions, substitutions of UTF-16 units). */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] ?? 0;
      row[j] = Math.min(above + 1, (row[j - 1] ?? 0) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] ?? 0;
}

/**
 * Character accuracy over a set: 1 − (total edit distance) / (total reference characters), each image's lines
 * joined with newlines, so a missing or extra line, a wrong order and a lost space all count.
 */
export function characterAccuracy(pairs: readonly { got: readonly string[]; want: readonly string[] }[]): number {
  let errors = 0;
  let total = 0;
  for (const { got, want } of pairs) {
    const reference = want.join('\n');
    errors += editDistance(got.join('\n'), reference);
    total += reference.length;
  }
  return total === 0 ? 1 : 1 - errors / total;
}
