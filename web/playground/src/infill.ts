// Infill in a CodeMirror editor with the package's inline completion extension
// (`codellama-webgpu/codemirror`): the text before and after the cursor are the prefix and the
// suffix; the suggestion streams in as ghost text at the cursor. Typing cancels the request in
// flight and asks again after a pause (suffix-first order keeps the prompt's start unchanged
// while typing, so the engine recomputes only the last few tokens). This file only wires the
// extension to the page's controls and statistics.
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { python } from '@codemirror/lang-python';
import { bracketMatching, indentOnInput, syntaxHighlighting, defaultHighlightStyle } from '@codemirror/language';
import { EditorState } from '@codemirror/state';
import { EditorView, drawSelection, highlightActiveLine, keymap, lineNumbers } from '@codemirror/view';
import { inlineCompleter, inlineCompletion, type InlineCompletionEvent } from 'codellama-webgpu/codemirror';
import { $, describeError } from './dom';
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
  let live: LiveStats | null = null;
  let view: EditorView | null = null;

  const onEvent = (e: InlineCompletionEvent) => {
    const d = view?.dom.dataset;
    if (!d) return;
    switch (e.type) {
      case 'request':
        live = new LiveStats(stats, null, host.info?.contextLength ?? 0);
        d['infill'] = 'running';
        break;
      case 'text':
        live?.piece();
        break;
      case 'done':
        live?.done(e.stats, e.text.trim() ? '' : ' · empty suggestion');
        d['infill'] = 'done';
        break;
      case 'cancel':
        d['infill'] = 'stopped';
        break;
      case 'error':
        stats.textContent = describeError(e.error, host.server ? 'server' : 'local');
        d['infill'] = 'error';
        break;
      case 'hit':
        if (e.source === 'cache') stats.textContent = 'suggestion from the cache · no request';
        break;
    }
  };

  view = new EditorView({
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
        inlineCompletion(() => (host.info ? host.engine() : null), {
          debounceMs: PAUSE_MS,
          suffixFirst: () => order.value === 'spm',
          // The page's sampling controls (max tokens included); no deadline: the controls bound it.
          generateOptions: () => samplingOptions(),
          maxTimeMs: null,
          keys: { trigger: 'Mod-Space' },
          onEvent,
        }),
        keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
        EditorView.contentAttributes.of({ 'aria-label': 'Code editor: suggestions appear at the cursor' }),
      ],
    }),
  });
  // Another model or engine (a server, or back to the local one): the suggestions cached for the
  // previous one are not this one's.
  host.onModel(() => {
    const completer = view ? inlineCompleter(view) : null;
    completer?.dismiss();
    completer?.cache.clear();
  });
  return view;
}
