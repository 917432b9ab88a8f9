/**
 * `codellama-webgpu/monaco`: an inline completions provider for the Monaco editor.
 *
 * ```ts
 * import * as monaco from 'monaco-editor';
 * import { createWorkerEngine } from 'codellama-webgpu';
 * import { registerInlineCompletions } from 'codellama-webgpu/monaco';
 * const engine = await createWorkerEngine();
 * await engine.load('/models/codellama-7b.Q4_K_M.gguf');
 * registerInlineCompletions(monaco, engine, { language: 'python' });
 * monaco.editor.create(document.body, { language: 'python', value: '' });
 * ```
 *
 * Monaco draws the ghost text and owns the keys: Tab accepts, Esc dismisses, Ctrl/Cmd-Right
 * accepts the next word (`editor.action.inlineSuggest.acceptNextWord`); `registerInlineCompletions`
 * also binds Ctrl/Cmd-Down to `editor.action.inlineSuggest.acceptNextLine` while a suggestion is
 * visible (Monaco has no default key for it). Monaco's `CancellationToken` is bridged to the
 * engine request's `AbortSignal`: a keystroke that does not match the suggestion in flight aborts
 * it; one that matches keeps it running for the next provider call. Recent suggestions are cached
 * by the text around the cursor, so typing through one or undoing back to one needs no request.
 *
 * Monaco is never imported at run time (only its types): pass the app's `monaco` namespace.
 */

import type * as monaco from 'monaco-editor';
import { InlineCompleter } from './editor/completer.js';
import type { CursorContext, EngineSource, InlineCompletionOptions } from './editor/options.js';

export { InlineCompleter, type Lookup } from './editor/completer.js';
export { SuggestionCache, type CacheHit } from './editor/cache.js';
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

/** The provider, with the completer behind it (counters, cache). */
export interface CodeLlamaInlineCompletionsProvider extends monaco.languages.InlineCompletionsProvider {
  readonly completer: InlineCompleter;
}

/** Monaco's `PartialAcceptTriggerKind` values (the enum is not imported at run time). */
const PARTIAL_WORD = 0;
const PARTIAL_LINE = 1;
/** Monaco's `InlineCompletionEndOfLifeReasonKind.Accepted`. */
const END_ACCEPTED = 0;

function rangeAt(p: monaco.Position): monaco.IRange {
  return { startLineNumber: p.lineNumber, startColumn: p.column, endLineNumber: p.lineNumber, endColumn: p.column };
}

/**
 * An `InlineCompletionsProvider` for `monaco.languages.registerInlineCompletionsProvider`.
 * The debounce is the provider's own (`debounceMs`), after the cache lookup, so a cached
 * suggestion shows at once; Monaco's own debounce is set to 0.
 */
export function inlineCompletionsProvider(
  engine: EngineSource,
  options: InlineCompletionOptions = {},
): CodeLlamaInlineCompletionsProvider {
  const completer = new InlineCompleter(engine, options);
  return {
    completer,
    displayName: 'Code Llama',
    debounceDelayMs: 0,
    async provideInlineCompletions(model, position, _context, token) {
      const doc = model.getValue();
      const offset = model.getOffsetAt(position);
      const ctx: CursorContext = { prefix: doc.slice(0, offset), suffix: doc.slice(offset) };
      const controller = new AbortController();
      const sub = token.onCancellationRequested(() => {
        controller.abort();
        // Keep the request in flight when the user typed what it has produced (the next call
        // picks it up); abort it otherwise. An unchanged document keeps it too.
        if (!model.isDisposed() && !completer.activeFits(model.getValue())) completer.cancel('typed');
      });
      try {
        let hit = completer.lookup(ctx, true);
        if (hit?.pending) hit = await completer.settle(ctx, controller.signal);
        if (controller.signal.aborted) return { items: [] };
        if (hit) return { items: hit.text ? [{ insertText: hit.text, range: rangeAt(position) }] : [] };
        const r = await completer.request(ctx);
        if (!r || !r.text || controller.signal.aborted) return { items: [] };
        return { items: [{ insertText: r.text, range: rangeAt(position) }] };
      } finally {
        sub.dispose();
      }
    },
    handlePartialAccept(_completions, item, _accepted, info) {
      const text = typeof item.insertText === 'string' ? item.insertText.slice(0, info.acceptedLength) : '';
      if (info.kind === PARTIAL_WORD) completer.accepted('word', text);
      else if (info.kind === PARTIAL_LINE) completer.accepted('line', text);
    },
    handleEndOfLifetime(_completions, item, reason) {
      if (reason.kind === END_ACCEPTED) completer.accepted('all', typeof item.insertText === 'string' ? item.insertText : '');
    },
    disposeInlineCompletions() {},
  };
}

/** Options of {@link registerInlineCompletions}. */
export interface RegisterInlineCompletionsOptions extends InlineCompletionOptions {
  /** Languages the provider serves. Default `'*'` (all). */
  language?: monaco.languages.LanguageSelector;
  /**
   * Key (a `monaco.KeyMod | monaco.KeyCode` number) bound to accept-next-line while a suggestion
   * is visible. Default `KeyMod.CtrlCmd | KeyCode.DownArrow`; `null`: none.
   */
  acceptLineKey?: number | null;
}

/**
 * Registers {@link inlineCompletionsProvider} with `monacoApi` (the app's `monaco` namespace) and
 * binds the accept-next-line key. Dispose the result to undo both and cancel the request in flight.
 */
export function registerInlineCompletions(
  monacoApi: typeof monaco,
  engine: EngineSource,
  options: RegisterInlineCompletionsOptions = {},
): monaco.IDisposable & { readonly provider: CodeLlamaInlineCompletionsProvider } {
  const provider = inlineCompletionsProvider(engine, options);
  const registration = monacoApi.languages.registerInlineCompletionsProvider(options.language ?? '*', provider);
  const key = options.acceptLineKey === undefined ? monacoApi.KeyMod.CtrlCmd | monacoApi.KeyCode.DownArrow : options.acceptLineKey;
  const binding =
    key === null
      ? null
      : monacoApi.editor.addKeybindingRule({ keybinding: key, command: 'editor.action.inlineSuggest.acceptNextLine', when: 'inlineSuggestionVisible' });
  return {
    provider,
    dispose() {
      provider.completer.dispose();
      registration.dispose();
      binding?.dispose();
    },
  };
}
