import { useEffect, useState } from 'preact/hooks';

/**
 * Light, dark, or the system's choice (the default). The choice is kept in localStorage (it is not a
 * secret) and applied as data-theme on <html>; the stylesheet defines both palettes.
 */
type Theme = 'system' | 'light' | 'dark';
const KEY = 'airfleet.theme';

export function applyStoredTheme(): void {
  apply((localStorage.getItem(KEY) as Theme | null) ?? 'system');
}

function apply(theme: Theme): void {
  if (theme === 'system') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
}

export function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>(() => (localStorage.getItem(KEY) as Theme | null) ?? 'system');
  useEffect(() => {
    apply(theme);
    if (theme === 'system') localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, theme);
  }, [theme]);
  return (
    <label class="theme">
      <span class="visually-hidden">Theme</span>
      <select value={theme} onChange={(e) => setTheme((e.target as HTMLSelectElement).value as Theme)}>
        <option value="system">Theme: system</option>
        <option value="light">Theme: light</option>
        <option value="dark">Theme: dark</option>
      </select>
    </label>
  );
}
