/**
 * A small LRU cache of recent suggestions, keyed by the text around the cursor (the last
 * `prefix` characters before it and the first `suffix` characters after it).
 *
 * A lookup also finds a suggestion the user has typed part of: the text before the cursor ends
 * with the entry's key followed by the suggestion's first characters (typing through it). So
 * typing through a suggestion, or undoing back into one, shows the rest at once without a request.
 */

import type { CursorContext } from './options.js';

interface Entry {
  /** The last `prefix` characters before the cursor (all of them when `whole`). */
  prefixTail: string;
  /** The prefix was shorter than the key window: it must match in full. */
  whole: boolean;
  suffixHead: string;
  text: string;
}

/** A cached suggestion that fits the cursor: `text` is what is left after `typed` characters. */
export interface CacheHit {
  text: string;
  typed: number;
}

export class SuggestionCache {
  #entries: Entry[] = []; // most recently used last

  constructor(
    readonly capacity: number,
    readonly keyChars: { prefix: number; suffix: number },
  ) {}

  get size(): number {
    return this.#entries.length;
  }

  /** Remembers `text` as the suggestion at `ctx` (empty suggestions too: asking again gives nothing new). */
  put(ctx: CursorContext, text: string): void {
    if (this.capacity <= 0) return;
    const key = this.#key(ctx);
    this.#entries = this.#entries.filter((e) => !(e.prefixTail === key.prefixTail && e.suffixHead === key.suffixHead));
    this.#entries.push({ ...key, text });
    while (this.#entries.length > this.capacity) this.#entries.shift();
  }

  /**
   * The suggestion for `ctx`: one made exactly here (`typed` 0), or one of which the text just
   * before the cursor is a typed-through start (`typed` > 0, some text left). The newest wins.
   */
  get(ctx: CursorContext): CacheHit | null {
    const suffixHead = ctx.suffix.slice(0, this.keyChars.suffix);
    for (let i = this.#entries.length - 1; i >= 0; i--) {
      const e = this.#entries[i]!;
      if (e.suffixHead !== suffixHead) continue;
      const typed = typedThrough(ctx.prefix, e);
      if (typed === null) continue;
      // Most recently used last.
      this.#entries.splice(i, 1);
      this.#entries.push(e);
      return { text: e.text.slice(typed), typed };
    }
    return null;
  }

  clear(): void {
    this.#entries = [];
  }

  #key(ctx: CursorContext): Omit<Entry, 'text'> {
    const n = this.keyChars.prefix;
    return {
      prefixTail: ctx.prefix.length > n ? ctx.prefix.slice(-n) : ctx.prefix,
      whole: ctx.prefix.length <= n,
      suffixHead: ctx.suffix.slice(0, this.keyChars.suffix),
    };
  }
}

/** How many characters of `e.text` the prefix ends with after `e`'s key (exact match: 0), or null. */
function typedThrough(prefix: string, e: Entry): number | null {
  // Exactly here, or through the suggestion (some of it left).
  for (let typed = 0; typed < Math.max(e.text.length, 1); typed++) {
    const want = e.prefixTail + e.text.slice(0, typed);
    if (e.whole ? prefix === want : prefix.endsWith(want)) return typed;
  }
  return null;
}
