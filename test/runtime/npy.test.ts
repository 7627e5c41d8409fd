import { describe, expect, it } from 'vitest';
import { decodeNpy, encodeNpy } from '../../runtime/tensor/npy.js';
import { isOutpostError } from '../../runtime/errors.js';

// Bytes of `np.save(f, np.arange(6, dtype=np.float32).reshape(2, 3))`, as NumPy 1.x writes them.
function numpyFixture(): Uint8Array {
  const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  const padded = header.padEnd(128 - 10 - 1, ' ') + '\n';
  const out = new Uint8Array(128 + 24);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(out.buffer).setUint16(8, padded.length, true);
  out.set(new TextEncoder().encode(padded), 10);
  out.set(new Uint8Array(Float32Array.from([0, 1, 2, 3, 4, 5]).buffer), 128);
  return out;
}

describe('.npy codec', () => {
  it('reads what NumPy writes', () => {
    const t = decodeNpy(numpyFixture());
    expect(t.dtype).toBe('float32');
    expect(t.shape).toEqual([2, 3]);
    expect(Array.from(t.data as Float32Array)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('round-trips every supported dtype, scalars and empty tensors', () => {
    const cases = [
      { dtype: 'float32', shape: [2, 2], data: Float32Array.from([1.5, -2, 3, 4]) },
      { dtype: 'float64', shape: [3], data: Float64Array.from([1e-300, 2, 3]) },
      { dtype: 'int8', shape: [2], data: Int8Array.from([-128, 127]) },
      { dtype: 'uint8', shape: [1, 1, 2], data: Uint8Array.from([0, 255]) },
      { dtype: 'int16', shape: [1], data: Int16Array.from([-300]) },
      { dtype: 'uint16', shape: [1], data: Uint16Array.from([65535]) },
      { dtype: 'float16', shape: [1], data: Uint16Array.from([0x3c00]) },
      { dtype: 'int32', shape: [], data: Int32Array.from([7]) },
      { dtype: 'uint32', shape: [1], data: Uint32Array.from([4e9]) },
      { dtype: 'int64', shape: [2], data: BigInt64Array.from([-(2n ** 62n), 5n]) },
      { dtype: 'uint64', shape: [1], data: BigUint64Array.from([2n ** 63n]) },
      { dtype: 'bool', shape: [3], data: Uint8Array.from([1, 0, 1]) },
      { dtype: 'float32', shape: [0, 4], data: new Float32Array(0) },
    ] as const;
    for (const c of cases) {
      const back = decodeNpy(encodeNpy({ ...c, shape: [...c.shape] }));
      expect(back.dtype).toBe(c.dtype);
      expect(back.shape).toEqual(c.shape);
      expect(Array.from(back.data as ArrayLike<number | bigint>)).toEqual(
        Array.from(c.data as ArrayLike<number | bigint>),
      );
    }
  });

  it('reads from a Node Buffer that views a larger pooled ArrayBuffer', () => {
    const pooled = Buffer.concat([Buffer.alloc(100, 7), Buffer.from(numpyFixture()), Buffer.alloc(50, 9)]);
    const t = decodeNpy(pooled.subarray(100, 100 + numpyFixture().length));
    expect(Array.from(t.data as Float32Array)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('pads the header to 64 bytes as numpy.lib.format requires', () => {
    const bytes = encodeNpy({ dtype: 'float32', shape: [1], data: new Float32Array(1) });
    expect((bytes.length - 4) % 64).toBe(0);
  });

  it.each([
    ['not npy', new TextEncoder().encode('hello world, definitely not numpy')],
    ['truncated data', numpyFixture().subarray(0, 140)],
    ['a truncated header', new TextEncoder().encode('\x93NUMPY\x01\x00')],
    [
      'a big-endian dtype',
      new TextEncoder().encode(
        "\x93NUMPY\x01\x00\x40\x00{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }".padEnd(74, ' ') + 'xxxx',
      ),
    ],
  ])('refuses %s with INPUT_INVALID', (_, bytes) => {
    try {
      decodeNpy(bytes);
      expect.unreachable();
    } catch (error) {
      expect(isOutpostError(error, 'INPUT_INVALID')).toBe(true);
    }
  });
});
