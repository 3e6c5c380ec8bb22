// Small GGUF and llama.cpp slot files written byte by byte, so the format tests never depend on the
// inference toolchain (the real files are tested as well when it is present).

class Writer {
  private readonly parts: Buffer[] = [];
  length = 0;
  bytes(b: Buffer): this {
    this.parts.push(b);
    this.length += b.length;
    return this;
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    return this.bytes(b);
  }
  i32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    return this.bytes(b);
  }
  u64(v: number | bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    return this.bytes(b);
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.u64(b.length).bytes(b);
  }
  padTo(alignment: number): this {
    const rest = this.length % alignment;
    return rest === 0 ? this : this.bytes(Buffer.alloc(alignment - rest));
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** A tensor of a test GGUF: name, shape, ggml type id, and bytes of data (F32: 4 per element). */
export interface TestTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly type: number;
  readonly bytes: number;
}

/** The tensors {@link ggufBytes} writes by default: an F32 matrix and a Q4_0 one (2 blocks of 18 bytes). */
export const DEFAULT_TENSORS: readonly TestTensor[] = [
  { name: 'token_embd.weight', shape: [8, 4], type: 0, bytes: 128 },
  { name: 'blk.0.attn_q.weight', shape: [32, 2], type: 2, bytes: 36 },
];

/**
 * A valid GGUF v3 file: `general.architecture`, a u32, an array of strings (a vocabulary), an array of
 * floats, and the tensors, each at the previous one's end rounded up to 32 bytes.
 * `offsetOf` overrides a tensor's recorded data offset (to write a broken file).
 */
export function ggufBytes(
  options: {
    architecture?: string | null;
    tensors?: readonly TestTensor[];
    offsetOf?: (index: number, offset: number) => number;
    version?: number;
  } = {},
): Buffer {
  const tensors = options.tensors ?? DEFAULT_TENSORS;
  const vocab = ['<s>', '</s>', 'hello', 'world', 'ünïcode'];
  const w = new Writer().bytes(Buffer.from('GGUF')).u32(options.version ?? 3);
  const kv: Array<(w: Writer) => void> = [];
  if (options.architecture !== null) {
    kv.push((w) =>
      w
        .str('general.architecture')
        .u32(8)
        .str(options.architecture ?? 'llama'),
    );
  }
  kv.push((w) => w.str('llama.context_length').u32(4).u32(2048));
  kv.push((w) => {
    w.str('tokenizer.ggml.tokens').u32(9).u32(8).u64(vocab.length);
    for (const t of vocab) w.str(t);
  });
  kv.push((w) => {
    w.str('tokenizer.ggml.scores').u32(9).u32(6).u64(vocab.length);
    for (let i = 0; i < vocab.length; i++) w.bytes(Buffer.alloc(4));
  });
  w.u64(tensors.length).u64(kv.length);
  for (const write of kv) write(w);
  let offset = 0;
  tensors.forEach((t, i) => {
    w.str(t.name).u32(t.shape.length);
    for (const d of t.shape) w.u64(d);
    w.u32(t.type).u64(options.offsetOf?.(i, offset) ?? offset);
    offset += Math.ceil(t.bytes / 32) * 32;
  });
  w.padTo(32);
  tensors.forEach((t, i) => {
    const data = Buffer.alloc(t.bytes);
    for (let j = 0; j < data.length; j++) data[j] = (j * 31 + i * 7) & 0xff;
    w.bytes(data).padTo(32);
  });
  return w.done();
}

/** Where {@link ggufBytes}'s first tensor info starts (after the metadata), for tests that break it. */
export function ggufHeaderEnd(file: Buffer): number {
  return file.indexOf(Buffer.from('token_embd.weight')) - 8;
}

/**
 * A llama.cpp slot file as llama-server 11434 writes it: magic "ggsq", version 4, the server's token
 * state (LLAMA_TOKEN_NULL, version 1, tokens, no media), then one KV stream of `tokens.length` cells
 * (positions 0.., sequence `slot`) with `layers` F16 key and value rows of `rowBytes` each.
 */
export function slotBytes(
  options: {
    tokens?: readonly number[];
    layers?: number;
    rowBytes?: number;
    slot?: number;
    version?: number;
  } = {},
): Buffer {
  const tokens = options.tokens ?? [1, 2, 3, 4, 5, 6, 7];
  const layers = options.layers ?? 2;
  const rowBytes = options.rowBytes ?? 16;
  const state = new Writer().u32(0xffffffff).u32(1).u32(tokens.length);
  for (const t of tokens) state.i32(t);
  state.u32(0);
  const words = state.done();
  const w = new Writer()
    .u32(0x67677371)
    .u32(options.version ?? 4)
    .u32(words.length / 4)
    .bytes(words);
  w.u32(1).u32(tokens.length);
  tokens.forEach((_, pos) =>
    w
      .i32(pos)
      .u32(1)
      .i32(options.slot ?? 0),
  );
  w.u32(0).u32(layers).u32(0).u32(0);
  for (let kv = 0; kv < 2; kv++) {
    for (let l = 0; l < layers; l++) {
      w.i32(1).u64(rowBytes);
      w.bytes(Buffer.alloc(rowBytes * tokens.length, (l + 1) * (kv + 3)));
    }
  }
  return w.done();
}
