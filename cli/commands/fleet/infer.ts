import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { OutpostError, fromFsError, messageOf } from '../../../runtime/errors.js';
import { parsePositiveInt } from '../../options.js';
import { print, printJson, table } from '../../output.js';
import { type ClientOptions, FleetClient, addClientOptions } from './client.js';

interface InferView {
  thing: string;
  model: string;
  roundTripMs: number;
  response: {
    model_name?: string;
    model_version?: string;
    outputs?: { name: string; datatype: string; shape: number[]; data?: unknown[] }[];
  };
}

const SHOWN_VALUES = 8; // values of each output printed for humans; --json has them all

/** The --input file: an Open Inference Protocol JSON request (`{"inputs": [...]}`). */
async function readRequest(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw fromFsError(error, path, 'read');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new OutpostError('INVALID_ARGUMENT', `${path} is not JSON: ${messageOf(error)}`);
  }
  if (typeof value !== 'object' || value === null || !Array.isArray((value as { inputs?: unknown }).inputs))
    throw new OutpostError('INVALID_ARGUMENT', `${path}: expected an inference request, {"inputs": [...]}`);
  return value as Record<string, unknown>;
}

/** `outpost fleet infer <thing> <model> --input request.json [--timeout ms] [--json]`: over MQTT, through the fleet. */
export function register(fleet: Command): void {
  addClientOptions(
    fleet.command('infer').description("run one inference on a device's model, over MQTT (asynchronous inference)"),
  )
    .argument('<thing>')
    .argument('<model>')
    .requiredOption('--input <file>', 'an Open Inference Protocol JSON request ({"inputs": [...]})')
    .option('--timeout <ms>', 'how long to wait for the answer (default 30000)', parsePositiveInt)
    .action(async (thing: string, model: string, opts: ClientOptions & { input: string; timeout?: number }) => {
      const request = await readRequest(opts.input);
      const client = await FleetClient.from(opts);
      const query = opts.timeout === undefined ? '' : `?timeout_ms=${opts.timeout}`;
      const path = `/v1/things/${encodeURIComponent(thing)}/infer/${encodeURIComponent(model)}${query}`;
      const answer = await client.post<InferView>(path, request);
      if (opts.json === true) {
        printJson(answer);
        return;
      }
      const { response } = answer;
      print(
        `${thing} ${response.model_name ?? model}@${response.model_version ?? '?'}: answered in ${answer.roundTripMs.toFixed(1)} ms`,
      );
      const rows = (response.outputs ?? []).map((o) => {
        const data = o.data ?? [];
        const shown = data.slice(0, SHOWN_VALUES).map((v) => (typeof v === 'number' ? Number(v.toPrecision(4)) : v));
        return [
          o.name,
          o.datatype,
          `[${o.shape.join(', ')}]`,
          `${JSON.stringify(shown)}${data.length > SHOWN_VALUES ? ' …' : ''}`,
        ];
      });
      print(table(['output', 'datatype', 'shape', 'data'], rows));
    });
}
