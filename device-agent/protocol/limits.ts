/**
 * The numbers of MQTT-based file delivery, with where they come from. "mqtt-based-file-delivery-in-devices" is the
 * developer guide page "Using AWS IoT MQTT-based file delivery in devices"; "IoT Core quotas" is AWS IoT Core
 * endpoints and quotas, message broker section.
 */

/** IoT Core quotas: the payload of one published message is at most 128 KB. */
export const IOT_CORE_MAX_MESSAGE_BYTES = 128 * 1024; // bytes

/** GetStream `l`: "the data block size in bytes (an integer in the range 256 to 131,072)"; else BlockSizeOutOfBounds. */
export const MIN_BLOCK_SIZE = 256; // bytes
export const MAX_BLOCK_SIZE = 131_072; // bytes

/** GetStream `f`: "the stream file ID (an integer in the range 0 to 255)". */
export const MAX_FILE_ID = 255;

/**
 * GetStream `o` and `n`: "an integer in the range 0 to 98,304" ("based on a 24 MB stream file size limit and 256 bytes
 * for the minimum block size"); else OffsetOutOfBounds / BlockCountLimitExceeded.
 */
export const MAX_BLOCK_OFFSET = 98_304; // blocks
export const MAX_BLOCKS_REQUESTED = 98_304; // blocks

/** GetStream `b`: "The bitmap must be less than 12,288 bytes"; else BlockBitmapLimitExceeded. */
export const MAX_BITMAP_BYTES = 12_287; // bytes

/**
 * The service sends at most this much block payload per GetStream request ("the service limit of 128 KB per
 * GetStream request"); a device asking for more must ask again for the rest. The default for `n` follows from it:
 * "If not defined, it defaults to 131072/DataBlockSize".
 */
export const MAX_RESPONSE_BYTES_PER_REQUEST = 131_072; // bytes of block payload

/** The blocks one GetStream request yields at most, for block size `blockSize` (at least one). */
export function maxBlocksPerRequest(blockSize: number, budgetBytes: number = MAX_RESPONSE_BYTES_PER_REQUEST): number {
  return Math.max(1, Math.floor(budgetBytes / blockSize));
}

/**
 * Framing a data message adds around its payload, at most: JSON `{"c":"<64>","f":255,"l":131072,"i":98304,"p":""}`
 * is under 120 bytes, CBOR's map of the same five keys under 100. 256 leaves room for either.
 */
export const MAX_DATA_FRAMING_BYTES = 256; // bytes

/** Largest block whose CBOR data message (raw bytes in `p`) fits IoT Core's 128 KB. */
export const MAX_CBOR_BLOCK_SIZE = IOT_CORE_MAX_MESSAGE_BYTES - MAX_DATA_FRAMING_BYTES; // bytes (130,816)

/**
 * Default block size: 64 KiB. A JSON data message is then 87,384 bytes of base64 plus framing, well under 128 KB,
 * so one index (built for one block size) serves JSON and CBOR devices alike, and a lost block costs 64 KiB to
 * fetch again. A CBOR-only fleet may go up to MAX_CBOR_BLOCK_SIZE for half the requests.
 */
export const DEFAULT_BLOCK_SIZE = 64 * 1024; // bytes
