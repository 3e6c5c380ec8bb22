/** What the probe read from one answer's body. */
export interface AnswerReading {
  /** The body is complete (see {@link readCompletion} and {@link StreamTally}). */
  readonly complete: boolean;
  readonly tokens: number;
  /** Why the body is not complete, or the error it carried. */
  readonly error?: string;
}

type Json = Record<string, unknown>;

function asObject(value: unknown): Json | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : undefined;
}

function firstChoice(body: Json | undefined): Json | undefined {
  const choices = body?.choices;
  return Array.isArray(choices) ? asObject(choices[0]) : undefined;
}

function completionTokens(body: Json | undefined): number | undefined {
  const n = asObject(body?.usage)?.completion_tokens;
  return typeof n === 'number' && n >= 0 ? n : undefined;
}

/** The message of an OpenAI error body (`{"error": {"message": ...}}`), or the text itself, shortened. */
export function errorMessage(text: string): string {
  let message = text;
  try {
    const error = asObject(JSON.parse(text))?.error;
    const m = asObject(error)?.message ?? error;
    if (typeof m === 'string') message = m;
  } catch {
    // Not JSON: the text itself.
  }
  message = message.replace(/\s+/g, ' ').trim();
  return message.length > 200 ? `${message.slice(0, 200)}…` : message;
}

/**
 * Reads a non-streamed chat completion: complete when it is JSON with a first choice that has a
 * `finish_reason` (a body cut short does not parse, and a proxy's error page has no choice).
 */
export function readCompletion(text: string): AnswerReading {
  let body: Json | undefined;
  try {
    body = asObject(JSON.parse(text));
  } catch {
    return { complete: false, tokens: 0, error: 'the body is not JSON (cut short?)' };
  }
  const finish = firstChoice(body)?.finish_reason;
  const tokens = completionTokens(body) ?? 0;
  if (typeof finish !== 'string' || finish === '') {
    return { complete: false, tokens, error: 'no finish_reason in the answer' };
  }
  return { complete: true, tokens };
}

/**
 * Follows an SSE chat completion stream chunk by chunk: counts content chunks, notes the first one,
 * the `finish_reason`, `data: [DONE]` and an error event (the gateway ends a broken stream with one,
 * and no `[DONE]`). Complete only with a finish_reason, `[DONE]` and no error.
 */
export class StreamTally {
  private pending = '';
  private contentChunks = 0;
  private usageTokens: number | undefined;
  private finished = false;
  private done = false;
  private streamError: string | undefined;
  /** True once a chunk with content went by: the caller notes the time of the first. */
  sawContent = false;

  /** Feeds a piece of the body; returns true when this piece carried the first content. */
  push(text: string): boolean {
    const before = this.sawContent;
    this.pending += text;
    for (;;) {
      const match = /\r?\n\r?\n/.exec(this.pending);
      if (!match) break;
      this.event(this.pending.slice(0, match.index));
      this.pending = this.pending.slice(match.index + match[0].length);
    }
    return !before && this.sawContent;
  }

  /** The reading once the body ended (a last event without its blank line still counts). */
  end(): AnswerReading {
    if (this.pending.trim() !== '') this.event(this.pending);
    this.pending = '';
    const tokens = this.usageTokens ?? this.contentChunks;
    if (this.streamError !== undefined) return { complete: false, tokens, error: this.streamError };
    if (!this.finished) return { complete: false, tokens, error: 'the stream ended without a finish_reason' };
    if (!this.done) return { complete: false, tokens, error: 'the stream ended without data: [DONE]' };
    return { complete: true, tokens };
  }

  private event(event: string): void {
    for (const line of event.split(/\r?\n/)) {
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') {
        this.done = true;
        continue;
      }
      let chunk: Json | undefined;
      try {
        chunk = asObject(JSON.parse(data));
      } catch {
        continue;
      }
      if (chunk?.error !== undefined) {
        this.streamError = `error event: ${errorMessage(JSON.stringify(chunk))}`;
        continue;
      }
      const choice = firstChoice(chunk);
      const content = asObject(choice?.delta)?.content;
      if (typeof content === 'string' && content !== '') {
        this.contentChunks++;
        this.sawContent = true;
      }
      if (typeof choice?.finish_reason === 'string' && choice.finish_reason !== '') this.finished = true;
      this.usageTokens = completionTokens(chunk) ?? this.usageTokens;
    }
  }
}
