import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';

/**
 * Synthetic "text line" images for calibrating the PaddleOCR models without a dataset: a soft paper-like background
 * with dark, irregular strokes, so activations have image-like statistics (not uniform noise). Deterministic.
 */
export async function writeTextLines(dir: string, count: number, width = 320, height = 48): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    const pixels = Buffer.alloc(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const paper = 200 + 40 * Math.sin((x + i * 13) / 40) * Math.cos(y / 9);
        const ink = Math.sin((x * (1 + (i % 5))) / 7 + i) > 0.7 && y > 12 && y < 36 ? -150 : 0;
        for (let c = 0; c < 3; c++) pixels[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, paper + ink + c * 5));
      }
    }
    await sharp(pixels, { raw: { width, height, channels: 3 } })
      .png()
      .toFile(join(dir, `line${String(i).padStart(3, '0')}.png`));
  }
  return dir;
}
