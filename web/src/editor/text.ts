/** The parts of a suggestion that accept-next-word and accept-next-line insert. */

/**
 * The suggestion's next word: leading whitespace (line breaks included), then a run of word
 * characters (letters, digits, `_`) or a run of other non-space characters.
 */
export function nextWord(text: string): string {
  const m = /^\s*(?:[\p{L}\p{N}_]+|[^\p{L}\p{N}_\s]+)?/u.exec(text);
  return m && m[0].length > 0 ? m[0] : text.slice(0, 1);
}

/**
 * The suggestion's next line: up to the end of the line it starts on (the line break stays in the
 * suggestion); when it starts with a line break, that break and the line after it.
 */
export function nextLine(text: string): string {
  const from = text.startsWith('\r\n') ? 2 : text.startsWith('\n') ? 1 : 0;
  const nl = text.indexOf('\n', from);
  if (nl < 0) return text;
  return text.slice(0, nl > 0 && text[nl - 1] === '\r' && nl - 1 >= from ? nl - 1 : nl);
}
