import type Sharp from 'sharp';

let loading: Promise<typeof Sharp> | undefined;

/**
 * sharp (libvips and its codecs, ~17 MB mapped) loads on the first image decoded, not with the module graph: an
 * agent that serves tensor models, or a pipeline whose images have not come yet, never maps it.
 */
export function loadSharp(): Promise<typeof Sharp> {
  loading ??= import('sharp').then((m) => m.default);
  return loading;
}
