// Sources: state, frames per second, decoder, detector and a live
// thumbnail (about once a second) per source; add and remove sources.
import { api, el, facts, say, number, cardList } from './api.js';

// entry per source: { card, fields, img, noPicture, last: { frames, at }, thumbBusy, thumbFailedAt }
const list = cardList({
  what: 'sources',
  fetchList: async () => (await api('/v1/sources')).sources,
  keyOf: (source) => source.id,
  update: (source, entry) => update(source, entry || card(source.id)),
  emptyId: 'sources-empty',
  everyMs: 1000,
});
export const { start, stop } = list;
const refresh = list.refresh;

function card(id) {
  const img = el('img', { alt: `Newest frame of source ${id}`, hidden: true });
  const noPicture = el('span', {}, 'no picture yet');
  const fields = {
    state: el('span'), fps: el('span'), decoder: el('span'), detector: el('span'),
    frames: el('span'), restarts: el('span'), uri: el('span'), error: el('span'),
  };
  const remove = el('button', { type: 'button', class: 'secondary', 'aria-label': `Remove source ${id}` }, 'Remove');
  const result = el('span', { class: 'result', role: 'status' });
  remove.addEventListener('click', () => removeSource(id, remove, result));
  const node = el('li', { class: 'card', 'data-source': id },
    el('h2', {}, id),
    el('div', { class: 'thumb' }, img, noPicture),
    facts([
      ['State', fields.state], ['FPS', fields.fps], ['Decoder', fields.decoder],
      ['Detector', fields.detector], ['Frames', fields.frames], ['Restarts', fields.restarts],
      ['URI', fields.uri], ['Last error', fields.error],
    ]),
    el('div', { class: 'actions' }, remove, result));
  document.getElementById('source-list').append(node);
  return { card: node, fields, img, noPicture, last: null, thumbBusy: false, thumbFailedAt: -Infinity };
}

function update(source, entry) {
  const { fields } = entry;
  fields.state.textContent = source.state;
  fields.state.className = `state-${source.state}`;
  // Frames per second over the last poll; the run's mean until there are two polls.
  const now = performance.now();
  let fps = source.mean_fps;
  if (entry.last && now > entry.last.at) {
    fps = ((source.frames_decoded - entry.last.frames) * 1000) / (now - entry.last.at);
  }
  entry.last = { frames: source.frames_decoded, at: now };
  fields.fps.textContent = number(fps, 1);
  fields.decoder.textContent = source.decoder || '–';
  fields.detector.textContent = source.detector || '–';
  fields.frames.textContent = number(source.frames_decoded);
  fields.restarts.textContent = number(source.restarts);
  fields.uri.textContent = source.uri;
  fields.error.textContent = source.last_error || 'none';
  if (source.frames_decoded > 0) thumbnail(source.id, entry);
  return entry;
}

// Loads the next thumbnail off-screen and swaps it in when it decoded, so
// the picture never flickers; after a failure it waits before trying again.
function thumbnail(id, entry) {
  if (entry.thumbBusy || performance.now() - entry.thumbFailedAt < 10000) return;
  entry.thumbBusy = true;
  const next = new Image();
  next.onload = () => {
    entry.img.src = next.src;
    entry.img.hidden = false;
    entry.noPicture.hidden = true;
    entry.thumbBusy = false;
  };
  next.onerror = () => {
    entry.thumbFailedAt = performance.now();
    entry.noPicture.textContent = 'no thumbnail (alerts.snapshots is off, or no frame yet)';
    entry.thumbBusy = false;
  };
  next.src = `/v1/sources/${encodeURIComponent(id)}/thumbnail.jpg?at=${Date.now()}`;
}

async function removeSource(id, button, result) {
  button.disabled = true;
  result.textContent = 'removing…';
  try {
    await api(`/v1/sources/${encodeURIComponent(id)}`, { method: 'DELETE' });
    say(`Source ${id} removed.`);
    list.drop(id);
  } catch (e) {
    result.textContent = e.message;
    button.disabled = false;
  }
}

const form = document.getElementById('add-source');
form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const problem = document.getElementById('add-error');
  problem.hidden = true;
  const data = new FormData(form);
  const body = { id: data.get('id').trim(), uri: data.get('uri').trim() };
  if (data.get('detector')) body.detector = data.get('detector');
  if (data.get('loop')) body.loop = true;
  if (data.get('realtime')) body.realtime = true;
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    await api('/v1/sources', { method: 'POST', body });
    say(`Source ${body.id} added.`);
    form.reset();
    await refresh();
  } catch (e) {
    problem.textContent = e.field ? `${e.message} (field: ${e.field})` : e.message;
    problem.hidden = false;
    const field = e.field && form.elements[e.field.split(/[.[]/)[0]];
    if (field && field.focus) field.focus();
  } finally {
    button.disabled = false;
  }
});
