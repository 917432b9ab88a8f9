// The playground page: model picker, sampling controls and the three modes around one engine.
import './styles.css';
import { hasWebGpu } from 'codellama-webgpu';
import { showBanner } from './banner';
import { setupChat } from './chat';
import { setupCompletion } from './completion';
import { describeError } from './dom';
import { Host } from './host';
import { setupInfill } from './infill';
import { ModelPicker } from './model-picker';
import { registerServiceWorker } from './offline';
import { persistSampling, showModeDefaults, tabKind } from './sampling';
import { setupTabs } from './tabs';

persistSampling();
const host = new Host();
const picker = new ModelPicker(host);
setupCompletion(host);
const editor = setupInfill(host);
setupChat(host);
const modeDefaults = (id: string) => {
  if (hasWebGpu()) showModeDefaults(host.engine(), tabKind(id)).catch(() => {});
};
setupTabs((id) => {
  if (id === 'tab-infill') requestAnimationFrame(() => editor.focus());
  modeDefaults(id);
});
modeDefaults(document.querySelector('[role=tab][aria-selected=true]')?.id ?? 'tab-complete');
void registerServiceWorker();

if (!hasWebGpu()) {
  showBanner(describeError(Object.assign(new Error('navigator.gpu is missing'), { name: 'WebGpuUnavailableError' })));
  document.body.dataset.model = 'unavailable';
} else {
  // The bundled model loads at once: the page is usable without choosing anything.
  void picker.loadSelected();
}
