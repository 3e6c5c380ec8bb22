import { CheckpointCorruptError, type CorruptionCheck } from './errors.js';

/** What a format parser asks the stream for next: bytes to look at, or bytes to pass over. */
export type ParseRequest =
  { readonly read: number; readonly what: string } | { readonly skip: number; readonly what: string };

/** Where a parser is: the file offset of the next byte it will get, and the file's size. */
export interface ParseCursor {
  offset: number;
  readonly size: number;
}

/**
 * A parser of a file format written as a generator: it yields {@link ParseRequest}s and receives the
 * bytes of each `read` (and `undefined` for a `skip`), so the same code checks a file read once, in
 * chunks of any size, alongside the sha256 (see {@link StreamParser}).
 */
export type FormatParser<R> = Generator<ParseRequest, R, Buffer | undefined>;

/** A corruption found at `offset`. */
export function corrupt(check: CorruptionCheck, message: string, offset: number): CheckpointCorruptError {
  return new CheckpointCorruptError(check, message, offset);
}

/** Reads `n` bytes. */
export function* read(n: number, what: string): Generator<ParseRequest, Buffer, Buffer | undefined> {
  return (yield { read: n, what }) as Buffer;
}

/** Passes over `n` bytes. */
export function* skip(n: number, what: string): Generator<ParseRequest, void, Buffer | undefined> {
  yield { skip: n, what };
}

/** Reads a little-endian u32. */
export function* u32(what: string): Generator<ParseRequest, number, Buffer | undefined> {
  return (yield* read(4, what)).readUInt32LE(0);
}

/** Reads a little-endian i32. */
export function* i32(what: string): Generator<ParseRequest, number, Buffer | undefined> {
  return (yield* read(4, what)).readInt32LE(0);
}

/** Reads a little-endian u64 that must fit in a JavaScript number (every real size and count does). */
export function* u64(cursor: ParseCursor, what: string): Generator<ParseRequest, number, Buffer | undefined> {
  const at = cursor.offset;
  const value = (yield* read(8, what)).readBigUInt64LE(0);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw corrupt('structure', `${what} at offset ${at} is ${value}, more than any file holds`, at);
  }
  return Number(value);
}

/**
 * Runs a {@link FormatParser} over a file streamed in chunks. A request that reaches past the end of
 * the file fails at once (a truncated file is refused before the rest is read); once the parser
 * returns, the remaining bytes are not looked at.
 */
export class StreamParser<R> {
  private readonly cursor: ParseCursor;
  private readonly parser: FormatParser<R>;
  private request: ParseRequest | undefined;
  private parts: Buffer[] = [];
  private partsLength = 0;
  private left = 0;
  private result: { value: R } | undefined;

  constructor(start: (cursor: ParseCursor) => FormatParser<R>, size: number) {
    this.cursor = { offset: 0, size };
    this.parser = start(this.cursor);
    this.next(undefined);
  }

  /** The parser's result once it returned. */
  get done(): boolean {
    return this.result !== undefined;
  }

  /** Where the parser is in the file. */
  get offset(): number {
    return this.cursor.offset;
  }

  /** Feeds the next chunk of the file (in order); throws the parser's CheckpointCorruptError. */
  update(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && this.request) {
      const take = Math.min(this.left, chunk.length - at);
      if ('read' in this.request) {
        // Chunks are reused once this returns: keep a copy of the bytes still wanted.
        this.parts.push(Buffer.from(chunk.subarray(at, at + take)));
        this.partsLength += take;
      }
      at += take;
      this.left -= take;
      if (this.left === 0) this.fulfil();
    }
  }

  /** The parser's result; throws when the file ended before the parser was done. */
  finish(): R {
    if (this.result) return this.result.value;
    const what = this.request?.what ?? 'the header';
    throw corrupt('structure', `file ends at ${this.cursor.offset} bytes inside ${what}`, this.cursor.offset);
  }

  private fulfil(): void {
    const request = this.request as ParseRequest;
    const bytes = 'read' in request ? Buffer.concat(this.parts, this.partsLength) : undefined;
    this.cursor.offset += 'read' in request ? request.read : request.skip;
    this.parts = [];
    this.partsLength = 0;
    this.next(bytes);
  }

  private next(input: Buffer | undefined): void {
    for (;;) {
      const step = this.parser.next(input);
      if (step.done) {
        this.request = undefined;
        this.result = { value: step.value };
        return;
      }
      const request = step.value;
      const n = 'read' in request ? request.read : request.skip;
      if (!Number.isSafeInteger(n) || n < 0 || this.cursor.offset + n > this.cursor.size) {
        throw corrupt(
          'structure',
          `${request.what} at offset ${this.cursor.offset} needs ${n} bytes, but the file ends at ${this.cursor.size}`,
          this.cursor.offset,
        );
      }
      if (n > 0) {
        this.request = request;
        this.left = n;
        return;
      }
      input = 'read' in request ? Buffer.alloc(0) : undefined;
    }
  }
}

/**
 * Several readings of one file at once (a format whose layout has a variant the file does not
 * announce): the file is valid when one of them is. Fails only when every reading failed, with the
 * error of the one that got furthest.
 */
export class AnyOfParsers<R> {
  private readonly alive: Array<StreamParser<R>>;
  private furthest: { offset: number; error: unknown } | undefined;

  constructor(parsers: Array<() => StreamParser<R>>) {
    this.alive = [];
    for (const make of parsers) {
      try {
        this.alive.push(make());
      } catch (err) {
        this.fail(err, 0);
      }
    }
    this.throwIfNoneLeft();
  }

  update(chunk: Buffer): void {
    for (const parser of [...this.alive]) {
      try {
        parser.update(chunk);
      } catch (err) {
        this.alive.splice(this.alive.indexOf(parser), 1);
        this.fail(err, parser.offset);
      }
    }
    this.throwIfNoneLeft();
  }

  finish(): R {
    for (const parser of this.alive) {
      try {
        return parser.finish();
      } catch (err) {
        this.fail(err, parser.offset);
      }
    }
    throw this.furthest?.error;
  }

  private fail(error: unknown, offset: number): void {
    if (!(error instanceof CheckpointCorruptError)) throw error;
    const at = error.offset ?? offset;
    if (!this.furthest || at > this.furthest.offset) this.furthest = { offset: at, error };
  }

  private throwIfNoneLeft(): void {
    if (this.alive.length === 0) throw this.furthest?.error;
  }
}
