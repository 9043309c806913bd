// The console's calls to the /v1 API and small DOM helpers. Every call goes
// through the same token rule as any API client; the browser's session
// cookie (HttpOnly) is sent by the browser itself, never read by this code.

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

// A JSON request; the API's own error message (and field) on failure.
export async function api(path, { method = 'GET', body } = {}) {
  const options = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    throw new ApiError(0, `dshost cannot be reached (${e.message})`);
  }
  if (response.status === 401) {
    // The session ended (or the server restarted): the login form again.
    window.location.assign('/');
    throw new ApiError(401, 'the session has ended; log in again');
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: text };
    }
  }
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || `HTTP ${response.status}`, data && data.field);
  }
  return data;
}

// Builds an element: el('a', { href: '#x', class: 'y' }, 'text', child).
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A <dl> of label/value pairs; values may be nodes.
export function facts(pairs) {
  return el('dl', { class: 'facts' }, pairs.map(([label, value]) => [el('dt', {}, label), el('dd', {}, value)]));
}

let statusTimer;
// The status line under the bar (announced to screen readers).
export function say(message, { error = false } = {}) {
  const status = document.getElementById('status');
  status.textContent = message;
  status.classList.toggle('error', error);
  clearTimeout(statusTimer);
  if (!error) statusTimer = setTimeout(() => { status.textContent = ''; }, 6000);
}

export function number(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  return Number(value).toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

// A page's list of cards kept in step with an API listing: `fetchList`
// returns the items, `keyOf` names one, `update` creates or fills its card
// (returning the card's entry, which has `card`, the element), cards whose
// item is gone are removed, and the element `emptyId` shows when there are
// none. `refresh` polls every `everyMs` between `start` and `stop`.
export function cardList({ what, fetchList, keyOf, update, emptyId, everyMs }) {
  const cards = new Map();
  let timer = null;
  async function refresh() {
    let list;
    try {
      list = await fetchList();
    } catch (e) {
      say(`Cannot list the ${what}: ${e.message}`, { error: true });
      return;
    }
    const seen = new Set();
    for (const item of list) {
      const key = keyOf(item);
      seen.add(key);
      cards.set(key, update(item, cards.get(key)));
    }
    for (const key of [...cards.keys()]) {
      if (!seen.has(key)) drop(key);
    }
    document.getElementById(emptyId).hidden = list.length > 0;
  }
  function drop(key) {
    const entry = cards.get(key);
    if (entry) entry.card.remove();
    cards.delete(key);
  }
  return {
    refresh,
    drop,
    start() {
      refresh();
      timer = setInterval(refresh, everyMs);
    },
    stop() {
      clearInterval(timer);
      timer = null;
    },
  };
}
