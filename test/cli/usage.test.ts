import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

/** README, "CLI": errors print one line, `outpost: <message> [CODE]`, and exit 1 — usage errors included. */
const USAGE_ERRORS: readonly (readonly [string[], RegExp])[] = [
  [['compile', 'model.onnx'], /required option '--target <arch\[:cpu\]\|host>' not specified/],
  [['compile', 'm.onnx', '--target', 'host', '-o', 'x', '--precision', 'int4'], /"int4" is not one of auto/],
  [['deploy', 'artifact'], /required option '--thing <names>' not specified/],
  [['run', 'model.onnx'], /required option '-i, --input <file>' not specified/],
  [['batch', 'model.onnx', 'inputs'], /required option '-o, --output <file.jsonl>' not specified/],
  [['batch', 'm.onnx', 'in', '-o', 'o.jsonl', '--resume', '--force'], /--resume and --force are alternatives/],
  [['agent', 'status', '--bogus'], /unknown option '--bogus'/],
  [['teleport'], /unknown command 'teleport'/],
  [['serve'], /missing required argument 'artifact'/],
];

describe('usage errors', () => {
  it.each(USAGE_ERRORS)('outpost %j: one line with INVALID_ARGUMENT, exit 1', async (args, message) => {
    const { code, stdout, stderr } = await runCli(args);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^outpost: [^\n]+ \[INVALID_ARGUMENT\]\n$/);
    expect(stderr).toMatch(message);
  });

  it('keeps --help and --version on stdout with exit 0', async () => {
    const help = await runCli(['compile', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: outpost compile/);
    expect((await runCli(['--version'])).stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });
});
