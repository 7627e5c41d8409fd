import * as z from 'zod';

/**
 * A path inside the artifact: relative, forward slashes, no `.`/`..` segments, no control characters (a NUL cannot
 * name a file at all, and a newline or escape sequence in a name printed by `outpost inspect` can forge output).
 */
export const relativePathSchema = z
  .string()
  .min(1)
  .max(255)
  .refine(
    (p) => !p.startsWith('/') && !p.includes('\\') && p.split('/').every((s) => s !== '' && s !== '.' && s !== '..'),
    {
      message: 'a relative path without "..", "." or empty segments',
    },
  )
  .refine((p) => !/[\u0000-\u001f\u007f]/.test(p), { message: 'a path without control characters' });
