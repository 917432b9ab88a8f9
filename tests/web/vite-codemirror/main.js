import { EditorView, keymap } from '@codemirror/view';
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import { createEngine, createWorkerEngine } from 'codellama-webgpu';
import { inlineCompletion } from 'codellama-webgpu/codemirror';

const engine = window.USE_WORKER ? await createWorkerEngine() : await createEngine();
await engine.load(window.MODEL);

window.view = new EditorView({
  parent: document.getElementById('editor'),
  doc: 'def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    ',
  extensions: [
    history(),
    inlineCompletion(engine, { maxTokens: 48, ...window.TEST_OPTIONS }), // Tab, Esc, Ctrl-→, Ctrl-↓
    keymap.of([...defaultKeymap, ...historyKeymap]),
  ],
});
document.body.dataset.status = 'ready';
