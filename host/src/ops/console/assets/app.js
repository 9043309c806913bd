// The console: three pages behind hash links (#sources, #strategies,
// #alerts; the sections are page-NAME so the browser does not scroll to them). A page polls only while it is shown; the alert stream runs all
// the time so the badge counts what arrived.
import * as sources from './sources.js';
import * as strategies from './strategies.js';
import * as alerts from './alerts.js';

const pages = { sources, strategies, alerts };
let current = null;

function show() {
  const name = (window.location.hash || '#sources').slice(1);
  const next = pages[name] ? name : 'sources';
  if (current === next) return;
  if (current) pages[current].stop();
  for (const section of document.querySelectorAll('section.page')) section.hidden = section.id !== `page-${next}`;
  for (const link of document.querySelectorAll('nav a[data-page]')) {
    if (link.dataset.page === next) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  current = next;
  document.title = `dshost console: ${next}`;
  pages[next].start();
}

document.querySelector('form.logout').hidden = document.body.dataset.auth !== 'session';
alerts.connect();
window.addEventListener('hashchange', show);
show();
