// The mode tabs (WAI-ARIA tabs pattern: arrow keys move between tabs, one tab stop).
export function setupTabs(onShow: (id: string) => void): void {
  const tabs = [...document.querySelectorAll<HTMLButtonElement>('[role=tab]')];
  const show = (tab: HTMLButtonElement, focus: boolean) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute('aria-controls')!)!.hidden = !on;
    }
    if (focus) tab.focus();
    history.replaceState(null, '', `#${tab.id.replace('tab-', '')}`);
    onShow(tab.id);
  };
  tabs.forEach((t, i) => {
    t.addEventListener('click', () => show(t, false));
    t.addEventListener('keydown', (e) => {
      const d = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
      if (d) show(tabs[(i + d + tabs.length) % tabs.length], true);
    });
  });
  const start = tabs.find((t) => t.id === `tab-${location.hash.slice(1)}`);
  if (start) show(start, false);
}
