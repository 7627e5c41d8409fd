import type { Command } from 'commander';
import {
  readCapture,
  readCaptureKey,
  readCaptureTensor,
  type CaptureRecord,
  type CaptureTensor,
} from '../../runtime/server/index.js';
import { tensorToJson } from '../../runtime/tensor/index.js';
import { print, printJson } from '../output.js';

interface ReadOptions {
  key?: string;
  json?: boolean;
}

const describeTensors = (tensors: Readonly<Record<string, CaptureTensor>>): string =>
  Object.entries(tensors)
    .map(([name, t]) => `${name} ${t.datatype}[${t.shape.join(',')}]${t.file === undefined ? '' : ` (${t.file})`}`)
    .join(', ') || '-';

/** A record with every tensor decoded (side files read, decrypted) into KServe-style JSON. */
async function decoded(path: string, record: CaptureRecord, key: Buffer | undefined): Promise<Record<string, unknown>> {
  const decode = async (tensors: Readonly<Record<string, CaptureTensor>>) => {
    const out: Record<string, ReturnType<typeof tensorToJson>> = {};
    for (const [name, t] of Object.entries(tensors)) out[name] = tensorToJson(await readCaptureTensor(path, t, key));
    return out;
  };
  return { ...record, inputs: await decode(record.inputs), outputs: await decode(record.outputs) };
}

export function register(program: Command): void {
  const capture = program.command('capture').description('inspect data-capture files (docs/serving-operations.md)');
  capture
    .command('read')
    .description('print the records of one capture file, decrypting with the capture key')
    .argument('<file>', 'a capture-<seq>.jsonl file (its .npy side files are read from beside it)')
    .option('--key <file>', 'the capture encryption key (64 hex characters, base64 of 32 bytes, or 32 raw bytes)')
    .option('--json', 'print every record with its tensors decoded (KServe v2 style: datatype, shape, data)')
    .action(async (file: string, opts: ReadOptions) => {
      const key = opts.key === undefined ? undefined : await readCaptureKey(opts.key);
      const records = await readCapture(file, key);
      if (opts.json === true) {
        const out: Record<string, unknown>[] = [];
        for (const record of records) out.push(await decoded(file, record, key));
        printJson(out);
        return;
      }
      for (const r of records) {
        const error = r.error === undefined ? '' : `  error ${r.error.code}: ${r.error.message}`;
        print(
          `${r.ts}  ${r.model}@${r.version}  ${r.latencyMs.toFixed(2)} ms  in: ${describeTensors(r.inputs)}  out: ${describeTensors(r.outputs)}${error}`,
        );
      }
      print(`${records.length} record(s)`);
    });
}
