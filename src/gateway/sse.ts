import type { StreamProgress } from './classify.js';

const BOUNDARY = /\r?\n\r?\n/;

/**
 * Splits a byte stream into complete SSE events, so the client only ever gets whole events: when a
 * replica dies mid-event, the half event is dropped and what follows (a continuation or an error
 * event) starts on a clean boundary. Optionally tracks the text the events carried.
 */
export class SseFramer {
  private pending = '';
  private events = 0;
  private text = '';
  private tokens = 0;
  private id: string | undefined;
  private model: string | undefined;
  private created: number | undefined;
  /** True once `data: [DONE]` went by. */
  done = false;

  constructor(private readonly track: boolean) {}

  /** Complete events (each ending with a blank line) in `chunk`, as one string; '' when none. */
  push(chunk: Buffer): string {
    this.pending += chunk.toString('utf8');
    let out = '';
    for (;;) {
      const match = BOUNDARY.exec(this.pending);
      if (!match) break;
      const event = this.pending.slice(0, match.index);
      this.pending = this.pending.slice(match.index + match[0].length);
      if (event.trim() === '') continue;
      out += `${event}\n\n`;
      this.events++;
      this.inspect(event);
    }
    return out;
  }

  progress(): StreamProgress {
    return {
      events: this.events,
      tokens: this.tokens,
      text: this.text,
      ...(this.id !== undefined && { id: this.id }),
      ...(this.model !== undefined && { model: this.model }),
      ...(this.created !== undefined && { created: this.created }),
    };
  }

  private inspect(event: string): void {
    for (const line of event.split(/\r?\n/)) {
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') {
        this.done = true;
        continue;
      }
      if (!this.track) continue;
      try {
        const chunk = JSON.parse(data) as ChunkShape;
        this.id ??= chunk.id;
        this.model ??= chunk.model;
        this.created ??= chunk.created;
        const choice = chunk.choices?.[0];
        const piece = choice?.delta?.content ?? choice?.text ?? '';
        if (piece !== '') this.tokens++;
        this.text += piece;
      } catch {
        // Not JSON: passed on as it is, not counted as text.
      }
    }
  }
}

interface ChunkShape {
  id?: string;
  model?: string;
  created?: number;
  choices?: { delta?: { content?: string }; text?: string }[];
}

/** An error as OpenAI's API gives one, for JSON answers and SSE error events alike. */
export function openAiError(message: string, type: string, code: string | null = null) {
  return { error: { message, type, param: null, code } };
}

/** An SSE event carrying an OpenAI-format error: how a stream that cannot go on ends. */
export function errorEvent(message: string, code: string): string {
  return `data: ${JSON.stringify(openAiError(message, 'upstream_error', code))}\n\n`;
}
