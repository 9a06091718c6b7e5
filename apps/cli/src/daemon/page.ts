/**
 * The status page: hand-written static files, inlined into the CLI at build time (tsup's raw-text
 * plug-in, Vite's `?raw` in tests), so the published package serves them with no build step at run time.
 */
import html from './page/index.html?raw';
import script from './page/app.js?raw';
import css from './page/app.css?raw';

export const PAGE_ASSETS: Record<string, { type: string; body: string }> = {
  '/': { type: 'text/html; charset=utf-8', body: html },
  '/index.html': { type: 'text/html; charset=utf-8', body: html },
  '/app.js': { type: 'text/javascript; charset=utf-8', body: script },
  '/app.css': { type: 'text/css; charset=utf-8', body: css },
};
