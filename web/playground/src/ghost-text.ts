// A CodeMirror 6 extension that shows a suggestion as "ghost text" at a position: Tab inserts it,
// Esc dismisses it, any edit or cursor move elsewhere removes it.
import { Prec, StateEffect, StateField } from '@codemirror/state';
import type { EditorState, Extension } from '@codemirror/state';
import { Decoration, EditorView, WidgetType, keymap } from '@codemirror/view';
import type { DecorationSet } from '@codemirror/view';

export interface Ghost {
  pos: number;
  text: string;
}

export const setGhost = StateEffect.define<Ghost | null>();

class GhostWidget extends WidgetType {
  constructor(readonly text: string) {
    super();
  }
  eq(other: GhostWidget): boolean {
    return other.text === this.text;
  }
  toDOM(): HTMLElement {
    const span = document.createElement('span');
    span.className = 'cm-ghost';
    span.setAttribute('aria-hidden', 'true');
    span.textContent = this.text; // text only, never HTML
    return span;
  }
  ignoreEvent(): boolean {
    return false;
  }
}

export const ghostField = StateField.define<Ghost | null>({
  create: () => null,
  update(value, tr) {
    for (const e of tr.effects) if (e.is(setGhost)) return e.value;
    if (!value) return null;
    // Any edit, or the cursor leaving the suggestion's position, removes it.
    if (tr.docChanged) return null;
    if (tr.selection && tr.state.selection.main.head !== value.pos) return null;
    return value;
  },
  provide: (f) =>
    EditorView.decorations.from(f, (g): DecorationSet =>
      g && g.text ? Decoration.set([Decoration.widget({ widget: new GhostWidget(g.text), side: 1 }).range(g.pos)]) : Decoration.none,
    ),
});

export function currentGhost(state: EditorState): Ghost | null {
  return state.field(ghostField, false) ?? null;
}

/** Inserts the suggestion and moves the cursor after it. */
export function acceptGhost(view: EditorView): boolean {
  const g = currentGhost(view.state);
  if (!g || !g.text) return false;
  view.dispatch({
    changes: { from: g.pos, insert: g.text },
    selection: { anchor: g.pos + g.text.length },
    effects: setGhost.of(null),
    userEvent: 'input.complete',
  });
  return true;
}

export function ghostText(onDismiss: () => void): Extension {
  return [
    ghostField,
    Prec.highest(
      keymap.of([
        { key: 'Tab', run: acceptGhost },
        {
          key: 'Escape',
          run: (view) => {
            if (!currentGhost(view.state)) return false;
            view.dispatch({ effects: setGhost.of(null) });
            onDismiss();
            return true;
          },
        },
      ]),
    ),
  ];
}
