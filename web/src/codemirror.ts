/**
 * `codellama-webgpu/codemirror`: inline completion (ghost text) for CodeMirror 6.
 *
 * ```ts
 * import { EditorView, basicSetup } from 'codemirror';
 * import { createWorkerEngine } from 'codellama-webgpu';
 * import { inlineCompletion } from 'codellama-webgpu/codemirror';
 * const engine = await createWorkerEngine();
 * await engine.load('/models/codellama-7b.Q4_K_M.gguf');
 * new EditorView({ parent: document.body, extensions: [basicSetup, inlineCompletion(engine)] });
 * ```
 *
 * A suggestion is asked for after a pause in typing (`debounceMs`) and streams in as ghost text
 * at the cursor. Keys (defaults, each configurable in `keys`): Tab accepts it, Esc dismisses
 * it, Ctrl-ArrowRight (macOS: Alt-ArrowRight) accepts its next word, Ctrl-ArrowDown (macOS:
 * Alt-ArrowDown) its next line, Alt-\ asks at once (see {@link DEFAULT_KEYS}). Typing
 * the suggestion's next characters consumes them without a new request; typing anything else
 * cancels the request in flight. Recent suggestions are cached by the text around the cursor.
 *
 * `@codemirror/state` and `@codemirror/view` are peer dependencies: the app's copies are used.
 */

import { Prec, StateEffect, StateField } from '@codemirror/state';
import type { EditorState, Extension, Transaction } from '@codemirror/state';
import { Decoration, EditorView, ViewPlugin, WidgetType, keymap } from '@codemirror/view';
import type { DecorationSet, KeyBinding, PluginValue, ViewUpdate } from '@codemirror/view';
import { InlineCompleter } from './editor/completer.js';
import type { CursorContext, EngineSource, InlineCompletionOptions } from './editor/options.js';
import { nextLine, nextWord } from './editor/text.js';

export { InlineCompleter, type Lookup } from './editor/completer.js';
export { SuggestionCache, type CacheHit } from './editor/cache.js';
export { nextLine, nextWord } from './editor/text.js';
export {
  INLINE_COMPLETION_DEFAULTS,
  cursorLineIndent,
  type CancelReason,
  type CursorContext,
  type EngineSource,
  type InlineCompletionCounters,
  type InlineCompletionEvent,
  type InlineCompletionOptions,
} from './editor/options.js';

/** Key bindings (CodeMirror key names); `null` turns one off. */
export interface InlineCompletionKeys {
  accept?: string | null;
  dismiss?: string | null;
  acceptWord?: string | null;
  acceptLine?: string | null;
  /** Ask for a suggestion now (no debounce). */
  trigger?: string | null;
}

/** The default keys. On macOS `Ctrl` stays `Ctrl`; word and line use CodeMirror's `mac` variants. */
export const DEFAULT_KEYS = {
  accept: 'Tab',
  dismiss: 'Escape',
  acceptWord: 'Ctrl-ArrowRight',
  acceptLine: 'Ctrl-ArrowDown',
  trigger: 'Alt-\\',
} as const;

const MAC_KEYS = { acceptWord: 'Alt-ArrowRight', acceptLine: 'Alt-ArrowDown' } as const;

/** Options of {@link inlineCompletion}. */
export interface CodeMirrorInlineCompletionOptions extends InlineCompletionOptions {
  keys?: InlineCompletionKeys;
  /** Class of the ghost text element. Default `'cm-ghost'`. */
  className?: string;
}

/** The ghost text shown: `text` at document position `pos`. */
export interface Ghost {
  pos: number;
  text: string;
}

const setGhost = StateEffect.define<Ghost | null>();

class GhostWidget extends WidgetType {
  constructor(
    readonly text: string,
    readonly className: string,
  ) {
    super();
  }
  override eq(other: GhostWidget): boolean {
    return other.text === this.text && other.className === this.className;
  }
  toDOM(): HTMLElement {
    const span = document.createElement('span');
    span.className = this.className;
    span.setAttribute('aria-hidden', 'true');
    span.textContent = this.text; // text only, never HTML
    return span;
  }
  override ignoreEvent(): boolean {
    return false;
  }
}

/** The ghost after `tr`: kept and shortened when the user typed its start at its position. */
function nextGhost(g: Ghost | null, tr: Transaction): Ghost | null {
  for (const e of tr.effects) if (e.is(setGhost)) return e.value;
  if (!g) return null;
  if (tr.docChanged) {
    let inserted: string | null = null;
    let ok = true;
    tr.changes.iterChanges((fromA, toA, _fromB, _toB, text) => {
      if (inserted !== null || fromA !== g.pos || toA !== fromA) ok = false;
      else inserted = text.toString();
    });
    if (!ok || inserted === null) return null;
    const s: string = inserted;
    if (s.length >= g.text.length || !g.text.startsWith(s)) return null;
    const pos = g.pos + s.length;
    if (tr.state.selection.main.head !== pos) return null;
    return { pos, text: g.text.slice(s.length) };
  }
  if (tr.selection && tr.state.selection.main.head !== g.pos) return null;
  return g;
}

const ghostField = StateField.define<Ghost | null>({
  create: () => null,
  update: (value, tr) => nextGhost(value, tr),
});

/** The ghost text shown in `state`, if any. */
export function currentGhost(state: EditorState): Ghost | null {
  return state.field(ghostField, false) ?? null;
}

function context(state: EditorState): CursorContext | null {
  const sel = state.selection.main;
  if (!sel.empty) return null;
  return { prefix: state.doc.sliceString(0, sel.head), suffix: state.doc.sliceString(sel.head) };
}

const USER_EDITS = ['input.type', 'input.paste', 'delete', 'undo', 'redo'];

class InlineCompletionPlugin implements PluginValue {
  readonly completer: InlineCompleter;
  #scheduled = false;

  constructor(
    readonly view: EditorView,
    engine: EngineSource,
    readonly options: CodeMirrorInlineCompletionOptions,
  ) {
    const user = options.onEvent;
    this.completer = new InlineCompleter(engine, {
      ...options,
      onEvent: (e) => {
        const d = view.dom.dataset;
        if (e.type === 'request') d['inlineCompletion'] = 'running';
        else if (e.type === 'done') d['inlineCompletion'] = 'done';
        else if (e.type === 'cancel') d['inlineCompletion'] = 'cancelled';
        else if (e.type === 'error') d['inlineCompletion'] = 'error';
        user?.(e);
      },
    });
  }

  update(u: ViewUpdate): void {
    if (!u.docChanged && !u.selectionSet) return;
    const ctx = context(u.state);
    if (!ctx) {
      this.completer.cancel('moved');
      this.#render();
      return;
    }
    const hit = this.completer.lookup(ctx, u.docChanged);
    if (hit) {
      this.#render();
      return;
    }
    const edited = u.transactions.some((t) => USER_EDITS.some((ev) => t.isUserEvent(ev)));
    this.completer.cancel(u.docChanged ? 'typed' : 'moved');
    this.#render();
    if (edited) this.ask();
  }

  /** Asks for a suggestion at the cursor after the debounce. */
  ask(): void {
    const ctx = context(this.view.state);
    if (!ctx) return;
    void this.completer.request(ctx, { onText: () => this.#render() });
  }

  /** Asks now: a cached suggestion shows at once, else a request starts without the debounce. */
  trigger(): void {
    const ctx = context(this.view.state);
    if (!ctx) return;
    const hit = this.completer.lookup(ctx, true);
    if (hit && (hit.text.length > 0 || hit.pending)) return this.#render();
    void this.completer.request(ctx, { debounceMs: 0, onText: () => this.#render() });
  }

  /** Shows what fits the cursor now (outside the update cycle: a dispatch is not allowed in it). */
  #render(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      const state = this.view.state;
      const ctx = context(state);
      const hit = ctx ? this.completer.lookup(ctx) : null;
      const want: Ghost | null = hit && hit.text.length > 0 ? { pos: state.selection.main.head, text: hit.text } : null;
      const have = currentGhost(state);
      if (want === have || (want && have && want.pos === have.pos && want.text === have.text)) return;
      this.view.dispatch({ effects: setGhost.of(want) });
    });
  }

  destroy(): void {
    this.completer.dispose();
  }
}

/** The inline completion plugin of a view, for its completer's counters and cache. */
export function inlineCompleter(view: EditorView): InlineCompleter | null {
  for (const p of PLUGINS) {
    const v = view.plugin(p);
    if (v) return v.completer;
  }
  return null;
}
const PLUGINS = new Set<ViewPlugin<InlineCompletionPlugin>>();

function acceptPart(view: EditorView, plugin: InlineCompletionPlugin | null, part: 'all' | 'word' | 'line'): boolean {
  const g = currentGhost(view.state);
  if (!g || !g.text || view.state.selection.main.head !== g.pos) return false;
  const text = part === 'all' ? g.text : part === 'word' ? nextWord(g.text) : nextLine(g.text);
  view.dispatch({
    changes: { from: g.pos, insert: text },
    selection: { anchor: g.pos + text.length },
    userEvent: 'input.complete',
    scrollIntoView: true,
  });
  plugin?.completer.accepted(part, text);
  return true;
}

/**
 * The CodeMirror extension: ghost-text suggestions from `engine` at the cursor.
 * See the module documentation for the keys and {@link InlineCompletionOptions} for the rest.
 */
export function inlineCompletion(engine: EngineSource, options: CodeMirrorInlineCompletionOptions = {}): Extension {
  const className = options.className ?? 'cm-ghost';
  const plugin = ViewPlugin.define((view) => new InlineCompletionPlugin(view, engine, options));
  PLUGINS.add(plugin);
  const keys = { ...DEFAULT_KEYS, ...options.keys };
  const bindings: KeyBinding[] = [];
  const bind = (key: string | null | undefined, run: (v: EditorView) => boolean, mac?: string) => {
    if (key) bindings.push(mac ? { key, mac, run } : { key, run });
  };
  bind(keys.accept, (v) => acceptPart(v, v.plugin(plugin), 'all'));
  // The macOS variants apply only to the default keys.
  bind(keys.acceptWord, (v) => acceptPart(v, v.plugin(plugin), 'word'), options.keys?.acceptWord === undefined ? MAC_KEYS.acceptWord : undefined);
  bind(keys.acceptLine, (v) => acceptPart(v, v.plugin(plugin), 'line'), options.keys?.acceptLine === undefined ? MAC_KEYS.acceptLine : undefined);
  bind(keys.dismiss, (v) => {
    const p = v.plugin(plugin);
    const busy = p?.completer.busy ?? false;
    if (!currentGhost(v.state) && !busy) return false;
    p?.completer.dismiss();
    v.dispatch({ effects: setGhost.of(null) });
    return true;
  });
  bind(keys.trigger, (v) => {
    v.plugin(plugin)?.trigger();
    return true;
  });
  return [
    ghostField,
    EditorView.decorations.from(ghostField, (g): DecorationSet =>
      g && g.text ? Decoration.set([Decoration.widget({ widget: new GhostWidget(g.text, className), side: 1 }).range(g.pos)]) : Decoration.none,
    ),
    plugin,
    Prec.highest(keymap.of(bindings)),
    EditorView.baseTheme({ [`.${className}`]: { opacity: '0.55', whiteSpace: 'pre' } }),
  ];
}
