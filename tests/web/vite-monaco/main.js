import * as monaco from 'monaco-editor';
import EditorWorker from 'monaco-editor/editor/editor.worker.js?worker';
import { createEngine, createWorkerEngine } from 'codellama-webgpu';
import { registerInlineCompletions } from 'codellama-webgpu/monaco';

self.MonacoEnvironment = { getWorker: () => new EditorWorker() };
const engine = window.USE_WORKER ? await createWorkerEngine() : await createEngine();
await engine.load(window.MODEL);

registerInlineCompletions(monaco, engine, { language: 'python', maxTokens: 48, ...window.TEST_OPTIONS });
window.editor = monaco.editor.create(document.getElementById('editor'), {
  language: 'python',
  value: 'def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    ',
  quickSuggestions: false, // the suggest widget would hide suggestions that do not extend its item
});
document.body.dataset.status = 'ready';
