import type { GraphProto } from 'onnx-buf';
import { OutpostError } from '../../runtime/errors.js';
import type { DType, TensorLike } from '../../runtime/tensor/index.js';
import { inferDType, valueTypes, type Dim } from '../onnx/index.js';

/**
 * One calibration sample: a value for every model input. Checked against the model's declared inputs before it
 * runs, so a wrong tensor is CALIBRATION_INVALID naming the sample, the input and what was expected, not an ONNX
 * Runtime message about some node deep inside. Symbolic and unnamed dims accept any size.
 */
export type CalibrationSample = Readonly<Record<string, TensorLike>>;

export interface ModelInput {
  readonly name: string;
  readonly dtype: DType | undefined;
  readonly shape: readonly Dim[] | undefined;
}

/** The graph's real inputs: initializers listed as inputs (IR < 4 style) are optional and left out. */
export function modelInputs(graph: GraphProto): ModelInput[] {
  const initializers = new Set(graph.initializer.map((t) => t.name));
  const types = valueTypes(graph);
  return graph.input
    .filter((i) => !initializers.has(i.name))
    .map((i) => ({ name: i.name, dtype: types.get(i.name)?.dtype, shape: types.get(i.name)?.shape }));
}

function shapeText(shape: readonly Dim[]): string {
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

function invalid(message: string, details: Record<string, unknown>): OutpostError {
  return new OutpostError('CALIBRATION_INVALID', message, { details });
}

/** Checks one sample; returns the dtype of each input's tensor. */
export function checkSample(
  sample: CalibrationSample,
  index: number,
  inputs: readonly ModelInput[],
): Record<string, DType> {
  const where = `calibration sample ${index}`;
  const names = new Set(inputs.map((i) => i.name));
  const expected = inputs.map((i) => i.name).join(', ');
  for (const name of Object.keys(sample)) {
    if (!names.has(name)) {
      throw invalid(`${where} has input "${name}", which the model does not have; its inputs: ${expected}`, {
        sample: index,
        input: name,
        inputs: [...names],
      });
    }
  }
  const dtypes: Record<string, DType> = {};
  for (const input of inputs) {
    const tensor = sample[input.name];
    if (tensor === undefined) {
      throw invalid(`${where} lacks input "${input.name}"; the model needs ${expected}`, {
        sample: index,
        input: input.name,
      });
    }
    const dtype = tensor.type ?? inferDType(tensor.data);
    if (input.dtype !== undefined && dtype !== input.dtype) {
      throw invalid(`${where}: input "${input.name}" is ${dtype}; the model expects ${input.dtype}`, {
        sample: index,
        input: input.name,
        expected: input.dtype,
        actual: dtype,
      });
    }
    const dims = tensor.dims;
    const count = dims.reduce((a, b) => a * b, 1);
    if (dims.some((d) => !Number.isSafeInteger(d) || d < 0) || count !== tensor.data.length) {
      throw invalid(`${where}: input "${input.name}" has dims [${dims.join(', ')}] but ${tensor.data.length} values`, {
        sample: index,
        input: input.name,
        dims: [...dims],
        values: tensor.data.length,
      });
    }
    const shape = input.shape;
    const fits =
      shape === undefined ||
      (shape.length === dims.length && shape.every((d, i) => typeof d !== 'number' || d === dims[i]));
    if (!fits) {
      throw invalid(
        `${where}: input "${input.name}" has shape [${dims.join(', ')}]; the model expects ${shapeText(shape)} (symbolic dims accept any size)`,
        { sample: index, input: input.name, expected: shape, actual: [...dims] },
      );
    }
    dtypes[input.name] = dtype;
  }
  return dtypes;
}
