// Renders a chat message: text paragraphs and ``` fenced code blocks (monospace), built as DOM
// nodes with textContent only — model output never becomes HTML.
import { el } from './dom';

export function renderMessage(target: HTMLElement, text: string): void {
  const parts = text.split(/^```[^\n]*\n?/m);
  const nodes: HTMLElement[] = [];
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      const pre = el('pre', 'code-block');
      pre.append(el('code', undefined, part.replace(/\n$/, '')));
      nodes.push(pre);
    } else if (part.trim() !== '') {
      nodes.push(el('p', 'text', part.replace(/^\n+|\n+$/g, '')));
    }
  });
  target.replaceChildren(...nodes);
}

/** Code models often answer with bare code: treat an answer with no fence that looks like code as one block. */
export function looksLikeCode(text: string): boolean {
  return !text.includes('```') && /^(\s*)(def |class |import |from |return |for |if |while |@)/m.test(text);
}
