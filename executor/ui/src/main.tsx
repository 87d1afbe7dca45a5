import { render } from 'preact';
import { App } from './app.tsx';
import { applyStoredTheme } from './theme.tsx';
import './styles.css';

applyStoredTheme();
render(<App />, document.getElementById('app')!);
