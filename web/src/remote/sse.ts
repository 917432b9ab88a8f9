/**
 * Server-sent events over a byte stream (the WHATWG "event stream" format, as llama.cpp's and
 * vLLM's `/v1/completions` send it with `stream: true`).
 *
 * The bytes are decoded with one streaming `TextDecoder`, so a UTF-8 character split between two
 * network reads is joined before any text is looked at; lines may end in `\n`, `\r\n` or `\r`
 * (a `\r\n` split between two reads counts once); events may be split anywhere. A field line
 * `data: x` appends `x` to the event's data, a blank line dispatches the event, `:` lines are
 * comments (llama.cpp's keep-alive pings). An event not ended by a blank line when the stream
 * ends is dropped, as the format says: a stream cut mid-event never yields half of a JSON object.
 */

/** One dispatched event. */
export interface SseEvent {
  /** The `event:` field (`'message'` when absent). */
  event: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
}

/** The incremental parser: feed decoded text, get the events it completes. */
export class SseParser {
  #buffer = '';
  /** The last text fed ended in `\r`: a `\n` starting the next one belongs to that line break. */
  #afterCr = false;
  #data: string[] = [];
  #event = '';

  /** Parses `text` (the next decoded piece); returns the events it completed, in order. */
  push(text: string): SseEvent[] {
    if (text === '') return [];
    if (this.#afterCr && text.startsWith('\n')) text = text.slice(1);
    this.#afterCr = false;
    this.#buffer += text;
    const out: SseEvent[] = [];
    let start = 0;
    for (;;) {
      const nl = this.#buffer.indexOf('\n', start);
      const cr = this.#buffer.indexOf('\r', start);
      const end = nl < 0 ? cr : cr < 0 ? nl : Math.min(nl, cr);
      if (end < 0) break;
      const line = this.#buffer.slice(start, end);
      if (this.#buffer[end] === '\r') {
        if (end + 1 === this.#buffer.length) this.#afterCr = true;
        start = this.#buffer[end + 1] === '\n' ? end + 2 : end + 1;
      } else {
        start = end + 1;
      }
      const ev = this.#line(line);
      if (ev !== null) out.push(ev);
    }
    this.#buffer = this.#buffer.slice(start);
    return out;
  }

  #line(line: string): SseEvent | null {
    if (line === '') {
      if (this.#data.length === 0) {
        this.#event = '';
        return null;
      }
      const ev = { event: this.#event === '' ? 'message' : this.#event, data: this.#data.join('\n') };
      this.#data = [];
      this.#event = '';
      return ev;
    }
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#event = value;
    // `id` and `retry` concern EventSource reconnection, which a POST stream does not do.
    return null;
  }
}

/**
 * The events of a byte stream, as they complete. Reading stops (and the reader is released) when
 * the consumer stops iterating; cancelling the stream is the caller's business (it owns it).
 */
export async function* sseEvents(reader: ReadableStreamDefaultReader<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder('utf-8');
  const parser = new SseParser();
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    for (const ev of parser.push(decoder.decode(r.value, { stream: true }))) yield ev;
  }
  for (const ev of parser.push(decoder.decode())) yield ev;
}
