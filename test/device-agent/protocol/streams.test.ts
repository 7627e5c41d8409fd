import { describe, expect, it } from 'vitest';
import {
  type StreamEncoding,
  type StreamMessage,
  dataMessageFrame,
  decodeDataBlock,
  decodeDescribeStreamRequest,
  decodeGetStreamRequest,
  decodeStreamDescription,
  decodeStreamRejected,
  encodeCbor,
  encodeStreamMessage,
  isProtocolError,
} from '../../../device-agent/protocol/index.js';

const json = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value));

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('stream messages: the developer guide examples', () => {
  it('DescribeStream request and response', () => {
    expect(decodeDescribeStreamRequest('json', json({ c: 'ec944cfb-1e3c-49ac-97de-9dc4aaad0039' }))).toEqual({
      ok: true,
      value: { c: 'ec944cfb-1e3c-49ac-97de-9dc4aaad0039' },
    });
    const response = {
      c: 'ec944cfb-1e3c-49ac-97de-9dc4aaad0039',
      s: 1,
      d: 'This is the description of stream ABC.',
      r: [
        { f: 0, z: 131072 },
        { f: 1, z: 51200 },
      ],
    };
    expect(decodeStreamDescription('json', json(response))).toEqual(response);
  });

  it('GetStream request, with the bitmap in the guide\'s "0x" form', () => {
    const request = { c: '1bb8aaa1-5c18-4d21-80c2-0b44fee10380', s: 1, f: 0, l: 4098, o: 2, n: 100 };
    expect(decodeGetStreamRequest('json', json(request))).toEqual({ ok: true, value: request });
    const bitmap = decodeGetStreamRequest('json', json({ c: '1', s: 1, l: 256, f: 1, o: 20, n: 32, b: '0x130080' }));
    expect(bitmap).toEqual({
      ok: true,
      value: { c: '1', s: 1, f: 1, l: 256, o: 20, n: 32, b: Uint8Array.of(0x13, 0, 0x80) },
    });
  });

  it('error response, also in its long backward-compatible form', () => {
    const short = { o: 'BlockSizeOutOfBounds', m: 'The block size is out of bounds', c: '1bb8aaa1' };
    expect(decodeStreamRejected('json', json(short))).toEqual(short);
    expect(decodeStreamRejected('json', json({ code: 'ResourceNotFound', message: 'no', clientToken: 'x' }))).toEqual({
      o: 'ResourceNotFound',
      m: 'no',
      c: 'x',
    });
    expect(decodeStreamRejected('json', json({ o: 'SomethingNew', m: 'eh' }))).toEqual({
      o: 'InternalError',
      m: 'SomethingNew: eh',
    });
  });

  it("decodes a CBOR GetStream request as FreeRTOS-style clients send it (rustot's recorded bytes)", () => {
    const bytes = Uint8Array.of(
      165,
      97,
      99,
      99,
      114,
      100,
      121,
      97,
      102,
      0,
      97,
      108,
      25,
      8,
      0,
      97,
      111,
      0,
      97,
      98,
      68,
      255,
      255,
      255,
      127,
    );
    expect(decodeGetStreamRequest('cbor', bytes)).toEqual({
      ok: true,
      value: { c: 'rdy', f: 0, l: 2048, o: 0, b: Uint8Array.of(0xff, 0xff, 0xff, 0x7f) },
    });
  });

  it('decodes a data block sent as an indefinite-length CBOR map, as the service sends them', () => {
    const payload = Buffer.alloc(1024, 7);
    const bytes = Buffer.concat([
      Buffer.from('bf616600616900616c190400617059', 'hex'),
      Buffer.from([0x04, 0x00]),
      payload,
      Buffer.from([0xff]),
    ]);
    expect(decodeDataBlock('cbor', bytes)).toEqual({ f: 0, i: 0, l: 1024, p: new Uint8Array(payload) });
  });
});

describe('stream messages: round trips', () => {
  const messages: [string, StreamMessage, (e: StreamEncoding, b: Uint8Array) => unknown][] = [
    ['description', { c: 'x', s: 2, d: 'd', r: [{ f: 0, z: 10 }] }, decodeStreamDescription],
    ['data', { c: 'x', f: 1, l: 3, i: 9, p: Uint8Array.of(1, 2, 3) }, decodeDataBlock],
    ['rejected', { o: 'VersionMismatch', m: 'moved on', c: 'x' }, decodeStreamRejected],
    [
      'get',
      { c: 'x', s: 1, f: 1, l: 65536, o: 4, n: 2, b: Uint8Array.of(5) },
      (e, b) => {
        const r = decodeGetStreamRequest(e, b);
        return r.ok ? r.value : r;
      },
    ],
  ];
  it.each(messages.flatMap(([name, m, d]) => (['json', 'cbor'] as const).map((e) => [name, e, m, d] as const)))(
    '%s in %s',
    (_name, encoding, message, decode) => {
      expect(decode(encoding, encodeStreamMessage(encoding, message))).toEqual(message);
    },
  );

  it('writes p as base64 in JSON and raw bytes in CBOR; a Buffer payload too', () => {
    const block = { f: 0, l: 3, i: 0, p: Buffer.from([0xfb, 0xff, 0x00]) };
    expect(JSON.parse(Buffer.from(encodeStreamMessage('json', block)).toString())).toEqual({
      f: 0,
      l: 3,
      i: 0,
      p: '+/8A',
    });
    expect(Buffer.from(encodeStreamMessage('cbor', block)).includes(Buffer.from([0x43, 0xfb, 0xff, 0x00]))).toBe(true);
  });
});

describe("stream messages: what the service refuses, with the guide's codes", () => {
  it.each([
    ['BlockSizeOutOfBounds', { f: 0, l: 255 }],
    ['BlockSizeOutOfBounds', { f: 0, l: 131_073 }],
    ['OffsetOutOfBounds', { f: 0, l: 256, o: 98_305 }],
    ['BlockCountLimitExceeded', { f: 0, l: 256, n: 98_305 }],
    ['BlockBitmapLimitExceeded', { f: 0, l: 256, b: Buffer.alloc(12_288).toString('base64') }],
    ['InvalidRequest', { l: 256 }],
    ['InvalidRequest', { f: 256, l: 256 }],
    ['InvalidRequest', { f: 0, l: '256' }],
    ['InvalidRequest', { f: 0, l: 256, b: 'not a bitmap!' }],
    ['InvalidRequest', { f: 0, l: 256, s: -1 }],
  ])('%s for %j', (code, request) => {
    for (const encoding of ['json', 'cbor'] as const) {
      const body = encoding === 'json' ? json({ c: 't', ...request }) : encodeCbor({ c: 't', ...request });
      const decoded = decodeGetStreamRequest(encoding, body);
      expect(decoded).toMatchObject({ ok: false, rejection: { o: code, c: 't' } });
    }
  });

  it('an over-long client token is InvalidRequest and is not echoed', () => {
    const decoded = decodeGetStreamRequest('json', json({ c: 'x'.repeat(65), f: 0, l: 256 }));
    expect(decoded).toEqual({ ok: false, rejection: { o: 'InvalidRequest', m: expect.any(String) as string } });
    expect(decodeDescribeStreamRequest('json', json({ c: 'x'.repeat(64) })).ok).toBe(true);
  });

  it('undecodable requests: InvalidJson, InvalidCbor, and InvalidRequest for a non-map', () => {
    expect(decodeGetStreamRequest('json', Buffer.from('{'))).toMatchObject({ rejection: { o: 'InvalidJson' } });
    expect(decodeGetStreamRequest('cbor', Uint8Array.of(0xbf))).toMatchObject({ rejection: { o: 'InvalidCbor' } });
    expect(decodeGetStreamRequest('json', json([1]))).toMatchObject({ rejection: { o: 'InvalidRequest' } });
    expect(decodeDescribeStreamRequest('cbor', new Uint8Array())).toEqual({ ok: true, value: {} });
  });

  it('replies that do not parse throw PROTOCOL_MESSAGE_INVALID', () => {
    for (const bad of [
      { f: 0, l: 2, i: 0, p: 'AAA' },
      { f: 0, l: 5, i: 0, p: 'AAAA' },
      { f: 0, i: 0, p: '' },
    ]) {
      expect(
        isProtocolError(
          thrown(() => decodeDataBlock('json', json(bad))),
          'PROTOCOL_MESSAGE_INVALID',
        ),
      ).toBe(true);
    }
    expect(
      isProtocolError(
        thrown(() => decodeStreamDescription('json', json({ s: 1 }))),
        'PROTOCOL_MESSAGE_INVALID',
      ),
    ).toBe(true);
  });
});

describe('data messages framed around their block (the server reads the block into place)', () => {
  it.each([
    ['cbor', 'tok', 300],
    ['cbor', undefined, 70_000],
    ['json', 'tok', 300],
  ] as const)('%s with token %s, %i bytes: the same bytes as encodeStreamMessage', (encoding, c, length) => {
    const block = Buffer.alloc(length, 7);
    const frame = dataMessageFrame(encoding, { ...(c === undefined ? {} : { c }), f: 3, i: 41 }, length);
    expect(frame.payload.length).toBe(length);
    frame.payload.set(block);
    const expected = encodeStreamMessage(encoding, {
      ...(c === undefined ? {} : { c }),
      f: 3,
      l: length,
      i: 41,
      p: block,
    });
    expect(Buffer.from(frame.message()).equals(Buffer.from(expected))).toBe(true);
    const decoded = decodeDataBlock(encoding, frame.message());
    expect(Buffer.from(decoded.p).equals(block)).toBe(true);
    expect(decoded.p).not.toBeInstanceOf(Buffer); // a plain Uint8Array view in CBOR, as before a copy
  });
});
