// Infill in a CodeMirror editor: the text before and after the cursor are the prefix and the
// suffix; the suggestion streams in as ghost text at the cursor. Typing cancels the request in
// flight and asks again after a pause (suffix-first order keeps the prompt's start unchanged
// while typing, so the engine recomputes only the last few tokens).
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { python } from '@codemirror/lang-python';
import { bracketMatching, indentOnInput, syntaxHighlighting, defaultHighlightStyle } from '@codemirror/language';
import { EditorState } from '@codemirror/state';
import { EditorView, drawSelection, highlightActiveLine, keymap, lineNumbers } from '@codemirror/view';
import { $, describeError } from './dom';
import { currentGhost, ghostText, setGhost } from './ghost-text';
import type { Host } from './host';
import { LiveStats } from './live-stats';
import { samplingOptions } from './sampling';

const PAUSE_MS = 350;

const SAMPLE = `def maximum(values):
    """Return the largest of the values."""
    best = values[0]
    for v in values:
        if v > best:

    return best
`;

export function setupInfill(host: Host): EditorView {
  const stats = $('infill-stats');
  const order = $<HTMLSelectElement>('infill-order');
  let timer: ReturnType<typeof setTimeout> | undefined;
  let seq = 0;

  const ask = async (view: EditorView) => {
    clearTimeout(timer);
    if (!host.info) return;
    const my = ++seq;
    const state = view.state;
    const pos = state.selection.main.head;
    if (!state.selection.main.empty) return;
    const prefix = state.doc.sliceString(0, pos);
    const suffix = state.doc.sliceString(pos);
    const still = () => my === seq && view.state.doc === state.doc && view.state.selection.main.head === pos;
    let text = '';
    view.dom.dataset.infill = 'running';
    try {
      const live = new LiveStats(stats, null, host.info.contextLength);
      const s = await host.generate(
        (e) => e.infill({ prefix, suffix, suffixFirst: order.value === 'spm' }, samplingOptions()),
        (piece) => {
          if (!still()) return;
          text += piece;
          live.piece();
          view.dispatch({ effects: setGhost.of({ pos, text }) });
        },
      );
      if (!still()) return;
      if (s) live.done(s, text.trim() ? '' : ' · empty suggestion');
      view.dom.dataset.infill = s ? 'done' : 'stopped';
    } catch (e) {
      if (my === seq) {
        stats.textContent = describeError(e);
        view.dom.dataset.infill = 'error';
      }
    }
  };

  const schedule = (view: EditorView) => {
    clearTimeout(timer);
    seq++;
    host.cancel();
    timer = setTimeout(() => void ask(view), PAUSE_MS);
  };

  const view = new EditorView({
    parent: $('editor'),
    state: EditorState.create({
      doc: SAMPLE,
      selection: { anchor: SAMPLE.indexOf('\n\n    return') + 1 },
      extensions: [
        lineNumbers(),
        history(),
        drawSelection(),
        highlightActiveLine(),
        indentOnInput(),
        bracketMatching(),
        syntaxHighlighting(defaultHighlightStyle),
        python(),
        ghostText(() => {
          seq++;
          host.cancel();
        }),
        keymap.of([
          { key: 'Mod-Space', run: (v) => (void ask(v), true) },
          ...defaultKeymap,
          ...historyKeymap,
          indentWithTab,
        ]),
        EditorView.contentAttributes.of({ 'aria-label': 'Code editor: suggestions appear at the cursor' }),
        EditorView.updateListener.of((u) => {
          const typed = u.transactions.some((t) => t.isUserEvent('input.type') || t.isUserEvent('delete') || t.isUserEvent('input.paste'));
          if (typed) schedule(u.view);
          else if (u.selectionSet && !currentGhost(u.state) && u.transactions.some((t) => t.isUserEvent('select'))) {
            seq++;
            host.cancel();
          }
        }),
      ],
    }),
  });
  return view;
}
