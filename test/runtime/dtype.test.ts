import { describe, expect, it } from 'vitest';
import {
  DTYPE_NAMES,
  DTYPES,
  allocateData,
  dataMatchesDType,
  dtypeOfData,
  viewData,
} from '../../runtime/tensor/dtype.js';

describe('the one dtype ↔ typed-array table', () => {
  it('allocates, views and recognises the array type of every dtype the table names', () => {
    for (const dtype of DTYPE_NAMES) {
      const data = allocateData(dtype, 4);
      expect(dataMatchesDType(data, dtype), dtype).toBe(true);
      expect(data.length).toBe(4);
      const name = DTYPES[dtype].array;
      expect(Array.isArray(data) ? 'Array' : data.constructor.name).toBe(name);
      if (Array.isArray(data)) {
        expect(viewData(dtype, new ArrayBuffer(8), 0, 1)).toBeUndefined();
        expect(dtypeOfData(data)).toBe('string');
        continue;
      }
      const buffer = new ArrayBuffer(data.BYTES_PER_ELEMENT * 6);
      const view = viewData(dtype, buffer, data.BYTES_PER_ELEMENT * 2, 3);
      expect(view?.buffer).toBe(buffer);
      expect(view?.byteOffset).toBe(data.BYTES_PER_ELEMENT * 2);
      expect(view?.length).toBe(3);
      // The reverse lookup gives the dtype the array itself implies (bool and float16 share uint8's and uint16's).
      const implied = dtypeOfData(data);
      expect(DTYPES[implied].array).toBe(name);
    }
  });

  it('reads untyped arrays as their own type: Uint8Array is uint8, Uint16Array uint16, BigInt64Array int64', () => {
    expect(dtypeOfData(new Uint8Array(1))).toBe('uint8');
    expect(dtypeOfData(new Uint16Array(1))).toBe('uint16');
    expect(dtypeOfData(new BigInt64Array(1))).toBe('int64');
    expect(dtypeOfData(new Float64Array(1))).toBe('float64');
  });
});
