// Strategies: running version, calls, errors by kind, quarantines, reload
// counts and a reload button (re-reads the strategy's file now).
import { api, el, facts, say, number, cardList } from './api.js';

const list = cardList({
  what: 'strategies',
  fetchList: async () => (await api('/v1/strategies')).strategies,
  keyOf: (strategy) => strategy.name,
  update: (strategy, entry) => update(strategy, entry || card(strategy.name)),
  emptyId: 'strategies-empty',
  everyMs: 2000,
});
export const { start, stop } = list;
const refresh = list.refresh;

function card(name) {
  const fields = {
    version: el('code', { class: 'version' }), state: el('span'), world: el('span'), sources: el('span'),
    calls: el('span'), detections: el('span'), quarantines: el('span', { class: 'quarantines' }),
    restarts: el('span'), reloads: el('span', { class: 'reloads' }), lastError: el('span'),
  };
  const errors = el('tbody');
  const button = el('button', { type: 'button', 'aria-label': `Reload strategy ${name}` }, 'Reload');
  const result = el('span', { class: 'result', role: 'status' });
  button.addEventListener('click', () => reload(name, button, result));
  const node = el('li', { class: 'card', 'data-strategy': name },
    el('h2', {}, name),
    facts([
      ['Version', fields.version], ['State', fields.state], ['World', fields.world], ['Sources', fields.sources],
      ['Calls', fields.calls], ['Detections', fields.detections], ['Quarantines', fields.quarantines],
      ['Restarts', fields.restarts], ['Reloads', fields.reloads], ['Last reload error', fields.lastError],
    ]),
    el('table', { class: 'errors' },
      el('caption', { class: 'muted' }, 'Errors by kind'),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'kind'), el('th', { scope: 'col' }, 'count'))),
      errors),
    el('div', { class: 'actions' }, button, result));
  document.getElementById('strategy-list').append(node);
  return { card: node, fields, errors };
}

function update(strategy, entry) {
  const { fields, errors } = entry;
  fields.version.textContent = strategy.version;
  fields.state.textContent = strategy.state;
  fields.state.className = `state-${strategy.state}`;
  fields.world.textContent = strategy.world;
  fields.sources.textContent = strategy.sources.length ? strategy.sources.join(', ') : 'every source';
  fields.calls.textContent = number(strategy.calls);
  fields.detections.textContent = number(strategy.detections);
  fields.quarantines.textContent = number(strategy.quarantines);
  fields.restarts.textContent = number(strategy.restarts);
  fields.reloads.textContent = `${number(strategy.reloads_ok)} ok, ${number(strategy.reloads_failed)} failed`;
  fields.lastError.textContent = strategy.last_reload_error || 'none';
  errors.replaceChildren(...Object.entries(strategy.errors || {}).map(([kind, count]) =>
    el('tr', {}, el('th', { scope: 'row' }, kind), el('td', { class: count > 0 ? 'some' : '' }, number(count)))));
  return entry;
}

async function reload(name, button, result) {
  button.disabled = true;
  result.textContent = 'reloading…';
  try {
    const answer = await api(`/v1/strategies/${encodeURIComponent(name)}/reload`, { method: 'POST' });
    result.textContent = answer.unchanged
      ? 'unchanged'
      : `now ${answer.version}${answer.previous ? ` (was ${answer.previous})` : ''}, ${number(answer.elapsed_ms, 1)} ms`;
    say(`Strategy ${name} reloaded.`);
    await refresh();
  } catch (e) {
    result.textContent = `reload failed: ${e.message}`;
  } finally {
    button.disabled = false;
  }
}
