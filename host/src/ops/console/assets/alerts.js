// Alerts: the journal's newest (GET /v1/alerts?last=N), then every alert
// as it passes the throttle (GET /v1/events, server-sent events), each with
// its snapshot linking to the full picture and the crop; filters by source,
// strategy and pattern.
import { api, el, say, number } from './api.js';

const BACKLOG = 100;
// Most alerts kept on the page; the oldest go first.
const KEEP = 500;
const list = () => document.getElementById('alert-list');
const known = new Map(); // id -> <li>
const choices = { source: new Set(), strategy: new Set(), pattern: new Set() };
let live = 0;
let stream = null;
let shown = false;

export function start() {
  shown = true;
  live = 0;
  badge();
}

export function stop() {
  shown = false;
}

// Subscribes first, then reads the backlog, so nothing falls in between
// (an alert in both is shown once).
export function connect() {
  stream = new EventSource('/v1/events');
  const state = document.getElementById('alert-live');
  stream.addEventListener('ready', () => { state.textContent = 'live'; });
  stream.addEventListener('alert', (event) => {
    let alert;
    try {
      alert = JSON.parse(event.data);
    } catch {
      return;
    }
    if (add(alert, { fresh: true }) && !shown) {
      live += 1;
      badge();
    }
  });
  stream.addEventListener('lagged', (event) => {
    const missed = JSON.parse(event.data).missed;
    say(`This page fell behind and missed ${missed} alerts; reload it for the journal's view.`, { error: true });
  });
  stream.addEventListener('error', () => {
    // EventSource reconnects by itself; CLOSED means it gave up (e.g. the session ended).
    if (stream.readyState === EventSource.CLOSED) {
      state.textContent = 'disconnected (reload the page)';
    } else {
      state.textContent = 'reconnecting';
    }
  });
  backlog();
}

async function backlog() {
  try {
    const { alerts } = await api(`/v1/alerts?last=${BACKLOG}`);
    for (const entry of alerts) add(entry, { fresh: false });
  } catch (e) {
    // No journal (alerts.journal.enabled: false) is not an error for the live view.
    if (e.status !== 409) say(`Cannot read the alert backlog: ${e.message}`, { error: true });
  }
}

function badge() {
  const node = document.getElementById('alert-badge');
  node.hidden = live === 0;
  node.textContent = String(live);
}

function add(alert, { fresh }) {
  if (known.has(alert.id)) return false;
  const item = render(alert, fresh);
  known.set(alert.id, item);
  // Newest first: the backlog comes oldest first, live alerts are newest.
  const first = list().firstChild;
  const newer = first && first.dataset.ts > alert.ts;
  if (!fresh && newer) {
    // A backlog entry older than what arrived live meanwhile.
    const after = [...list().children].find((node) => node.dataset.ts <= alert.ts);
    list().insertBefore(item, after || null);
  } else {
    list().prepend(item);
  }
  while (known.size > KEEP) {
    const last = list().lastChild;
    known.delete(last.dataset.id);
    last.remove();
  }
  for (const key of Object.keys(choices)) offer(key, alert[key]);
  filter();
  return true;
}

function render(alert, fresh) {
  const base = `/v1/alerts/${encodeURIComponent(alert.id)}`;
  const description = `${alert.pattern} on ${alert.source}, frame ${alert.frame}`;
  let pictures;
  if (alert.snapshot) {
    pictures = el('div', { class: 'pics' },
      el('a', { href: `${base}/snapshot.jpg`, target: '_blank', rel: 'noopener' },
        el('img', {
          src: `${base}/snapshot.jpg`, alt: `Snapshot: ${description}`, loading: 'lazy', decoding: 'async',
          width: alert.snapshot.width, height: alert.snapshot.height,
        })),
      el('span', {},
        el('a', { href: `${base}/snapshot.jpg`, target: '_blank', rel: 'noopener' }, 'full picture'),
        alert.snapshot.crop ? [' · ', el('a', { href: `${base}/crop.jpg`, target: '_blank', rel: 'noopener' }, 'crop')] : null));
  } else {
    pictures = el('div', { class: 'nopic' }, 'no snapshot');
  }
  const box = alert.bbox;
  // The crop beside the text: the object itself, at its own resolution.
  const crop = alert.snapshot && alert.snapshot.crop
    ? el('a', { class: 'crop', href: `${base}/crop.jpg`, target: '_blank', rel: 'noopener' },
      el('img', { src: `${base}/crop.jpg`, alt: `Crop: ${description}`, loading: 'lazy', decoding: 'async' }))
    : null;
  return el('li', {
    class: fresh ? 'alert new' : 'alert', 'data-id': alert.id, 'data-ts': alert.ts,
    'data-source': alert.source, 'data-strategy': alert.strategy, 'data-pattern': alert.pattern,
  },
  pictures,
  el('div', {},
    el('h2', { class: `level-${alert.level}` }, `${alert.pattern} ${number(alert.confidence, 2)}`),
    el('p', {}, `${alert.source} · ${alert.strategy} · ${alert.level}`),
    el('p', { class: 'muted' },
      el('time', { datetime: alert.ts }, new Date(alert.ts).toLocaleString()),
      ` · frame ${alert.frame} · box ${number(box.left)},${number(box.top)} ${number(box.width)}×${number(box.height)}`,
      alert.object_id !== null && alert.object_id !== undefined ? ` · object ${alert.object_id}` : '')),
  crop);
}

// Adds a value to a filter's choices (kept sorted).
function offer(key, value) {
  if (!value || choices[key].has(value)) return;
  choices[key].add(value);
  const select = document.getElementById(`filter-${key}`);
  const options = [...choices[key]].sort();
  const chosen = select.value;
  select.replaceChildren(el('option', { value: '' }, 'all'), ...options.map((v) => el('option', { value: v }, v)));
  select.value = chosen;
}

function filter() {
  const wanted = {};
  for (const key of Object.keys(choices)) wanted[key] = document.getElementById(`filter-${key}`).value;
  let count = 0;
  for (const item of list().children) {
    const match = Object.entries(wanted).every(([key, value]) => !value || item.dataset[key] === value);
    item.hidden = !match;
    if (match) count += 1;
  }
  document.getElementById('alert-count').textContent = String(count);
}

document.getElementById('alert-filters').addEventListener('change', filter);
