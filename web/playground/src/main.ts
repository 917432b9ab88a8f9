// The playground page: model picker, sampling controls and the three modes around one engine.
import './styles.css';
import { hasWebGpu } from 'codellama-webgpu';
import { showBanner } from './banner';
import { setupChat } from './chat';
import { setupCompletion } from './completion';
import { $, describeError } from './dom';
import { Host } from './host';
import { setupInfill } from './infill';
import { DEMO_MODEL_URL, ModelPicker } from './model-picker';
import { registerServiceWorker } from './offline';
import { persistSampling, showModeDefaults, tabKind } from './sampling';
import { persistServerFields } from './server-source';
import { setupTabs } from './tabs';

persistSampling();
persistServerFields();
$<HTMLInputElement>('server-tokenizer').placeholder = DEMO_MODEL_URL;
const host = new Host();
const picker = new ModelPicker(host);
setupCompletion(host);
const editor = setupInfill(host);
setupChat(host);
// The local engine needs WebGPU; a server does not.
const modeDefaults = (id: string) => {
  if (hasWebGpu() || host.server) showModeDefaults(host.engine(), tabKind(id)).catch(() => {});
};
const currentTab = () => document.querySelector('[role=tab][aria-selected=true]')?.id ?? 'tab-complete';
setupTabs((id) => {
  if (id === 'tab-infill') requestAnimationFrame(() => editor.focus());
  modeDefaults(id);
});
modeDefaults(currentTab());
host.onModel((info) => {
  if (info) modeDefaults(currentTab());
});
void registerServiceWorker();

if (picker.serverSelected) {
  // The server was the source in use at the end of the last visit: connect to it again.
  void picker.connect();
} else if (!hasWebGpu()) {
  showBanner(
    describeError(Object.assign(new Error('navigator.gpu is missing'), { name: 'WebGpuUnavailableError' })) +
      ' Without WebGPU, the page can still use a server: choose "A server" under Model.',
  );
  document.body.dataset.model = 'unavailable';
} else {
  // The bundled model loads at once: the page is usable without choosing anything.
  void picker.loadSelected();
}
