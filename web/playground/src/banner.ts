// The one alert line at the top of the page.
import { $ } from './dom';

export function showBanner(message: string | null): void {
  const b = $('banner');
  b.hidden = message === null;
  b.textContent = message ?? '';
}
