// The web console in a real browser: Debian's Chromium, headless, driven by
// playwright-core. tests/console.rs starts two real dshost binaries (one
// open on loopback with a synthetic street scene and yolo_filter, one with
// a token) and runs this script; every check throws on failure and the
// script exits non-zero. What is checked comes from the browser (decoded
// images, what the page shows, cookies as Chromium keeps them) and from the
// files the test wrote (the strategy bytes), not from dshost's own claims.
//
// Environment: CONSOLE_URL, LOGIN_URL, CONSOLE_TOKEN, STRATEGY_FILE (the
// running strategy's file), NEXT_STRATEGY (another build to swap in),
// SCREENSHOTS (folder), BROWSER_TOOLS (where npm ci put playwright-core).

import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};
const CONSOLE = env('CONSOLE_URL');
const LOGIN = env('LOGIN_URL');
const TOKEN = env('CONSOLE_TOKEN');
const SHOTS = env('SCREENSHOTS');
mkdirSync(SHOTS, { recursive: true });

const require = createRequire(join(env('BROWSER_TOOLS'), 'node_modules', 'x.js'));
const { chromium } = require('playwright-core');

// Waits are bounded (they end the test with a message), not measurements.
const WAIT = 60_000;
const step = (name) => console.log(`ok - ${name}`);

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  // Flags known to work on these machines: no sandbox as root, and no
  // background connections (the network is closed).
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

// Console errors and uncaught exceptions of a page, for the final check.
function watch(page, problems) {
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
}

// Every form control has a label and every button a name (what a screen
// reader announces), and nothing is wider than the window.
async function accessibleAndFits(page, what) {
  const report = await page.evaluate(() => {
    const visible = (node) => node.offsetParent !== null;
    const unlabelled = [...document.querySelectorAll('input, select, textarea')]
      .filter(visible).filter((node) => node.labels.length === 0 && !node.getAttribute('aria-label'))
      .map((node) => node.outerHTML);
    const nameless = [...document.querySelectorAll('button')].filter(visible)
      .filter((node) => !(node.getAttribute('aria-label') || node.textContent.trim())).map((node) => node.outerHTML);
    const root = document.scrollingElement;
    return { unlabelled, nameless, width: root.scrollWidth, window: root.clientWidth };
  });
  assert.deepEqual(report.unlabelled, [], `${what}: controls without a label`);
  assert.deepEqual(report.nameless, [], `${what}: buttons without a name`);
  assert.ok(report.width <= report.window, `${what}: the page is ${report.width} px wide in a ${report.window} px window`);
}

// A digest of an image's decoded pixels (drawn by the browser).
const pixels = (image) => image.evaluate((img) => {
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(img, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let hash = 2166136261;
  for (let i = 0; i < data.length; i += 1) hash = Math.imul(hash ^ data[i], 16777619) >>> 0;
  return `${canvas.width}x${canvas.height}:${hash}`;
});

// A screenshot of the whole window from the top, once the pictures in view
// have decoded.
async function shot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForFunction(() => [...document.images]
    .filter((img) => !img.hidden && img.getBoundingClientRect().top < window.innerHeight && img.offsetParent !== null)
    .every((img) => img.complete && img.naturalWidth > 0), null, { timeout: WAIT });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), animations: 'disabled' });
}

async function apiSources(base) {
  const response = await fetch(`${base}/v1/sources`);
  assert.equal(response.status, 200);
  return (await response.json()).sources.map((s) => s.id);
}

async function sourcesPage(page) {
  await page.goto(`${CONSOLE}/#sources`);
  const card = page.locator('li.card[data-source="street"]');
  await card.waitFor({ timeout: WAIT });
  const thumb = card.locator('.thumb img');
  await page.waitForFunction((img) => !img.hidden && img.complete && img.naturalWidth > 0, await thumb.elementHandle(),
    { timeout: WAIT });
  const first = await pixels(thumb);
  assert.match(first, /^[1-9]\d*x[1-9]\d*:/, 'the thumbnail decodes');
  // The scene moves: a later thumbnail has other pixels.
  const deadline = Date.now() + WAIT;
  let later = first;
  while (later === first) {
    assert.ok(Date.now() < deadline, 'the thumbnail did not change within a minute');
    await page.waitForTimeout(500);
    later = await pixels(thumb);
  }
  step(`sources: the thumbnail decodes (${first.split(':')[0]}) and changes over time`);
  await page.waitForFunction(() => {
    const card = document.querySelector('li.card[data-source="street"]');
    const text = card && card.textContent;
    return text && text.includes('running') && text.includes('roi');
  }, null, { timeout: WAIT });
  step('sources: state and detector shown');

  // A refused source: the API's message is shown, naming the field.
  await page.fill('#new-id', 'broken');
  await page.fill('#new-uri', 'nope://camera');
  await page.click('#add-source button[type=submit]');
  const problem = page.locator('#add-error');
  await problem.waitFor({ state: 'visible', timeout: WAIT });
  assert.match(await problem.textContent(), /uri/, 'the refusal names the field');
  assert.ok(!(await apiSources(CONSOLE)).includes('broken'));
  step(`sources: a bad URI is refused with "${await problem.textContent()}"`);

  await page.fill('#new-id', 'added');
  await page.fill('#new-uri', 'test://ball?width=160&height=120&fps=10');
  await page.click('#add-source button[type=submit]');
  const added = page.locator('li.card[data-source="added"]');
  await added.waitFor({ timeout: WAIT });
  await page.waitForFunction(() => {
    const img = document.querySelector('li.card[data-source="added"] .thumb img');
    return img && !img.hidden && img.naturalWidth > 0;
  }, null, { timeout: WAIT });
  assert.ok((await apiSources(CONSOLE)).includes('added'), 'the API lists the added source');
  assert.ok(await problem.isHidden(), 'no error after a good source');
  step('sources: a source added through the form appears with its own thumbnail');
  await shot(page, 'sources');

  await page.click('button[aria-label="Remove source added"]');
  await added.waitFor({ state: 'detached', timeout: WAIT });
  assert.ok(!(await apiSources(CONSOLE)).includes('added'), 'the API no longer lists it');
  // It stays gone (the next poll does not bring it back).
  await page.waitForTimeout(1500);
  assert.equal(await added.count(), 0);
  step('sources: the remove button removes it');
}

async function strategiesPage(page) {
  await page.goto(`${CONSOLE}/#strategies`);
  const card = page.locator('li.card[data-strategy="yolo_filter"]');
  await card.waitFor({ timeout: WAIT });
  const reloads = async () => Number((await card.locator('.reloads').textContent()).split(' ')[0].replace(/,/g, ''));
  const before = await reloads();
  const version = await card.locator('.version').textContent();
  const file = env('STRATEGY_FILE');
  const digest = (path) => createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 8);
  const old = digest(file);
  assert.ok(version.includes(old), `${version} names the running file's sha256`);
  // Swap in another build of the same filter (the C SDK's), atomically; the
  // file watcher is off, so only the button loads it.
  copyFileSync(env('NEXT_STRATEGY'), `${file}.next`);
  renameSync(`${file}.next`, file);
  const next = digest(file);
  assert.notEqual(next, old, 'the other build has other bytes');
  await card.locator('button', { hasText: 'Reload' }).click();
  await page.waitForFunction((want) => {
    const card = document.querySelector('li.card[data-strategy="yolo_filter"]');
    return card && card.querySelector('.version').textContent.includes(want);
  }, next, { timeout: WAIT });
  await page.waitForFunction((want) => {
    const text = document.querySelector('li.card[data-strategy="yolo_filter"] .reloads').textContent;
    return Number(text.split(' ')[0].replace(/,/g, '')) === want;
  }, before + 1, { timeout: WAIT });
  assert.match(await card.locator('.result').textContent(), new RegExp(`now \\S*${next}.*was \\S*${old}`));
  step(`strategies: reload swapped ${version} for the file's new sha256 ${next}; reloads ${before} -> ${before + 1}`);
  await page.waitForFunction(() => {
    const card = document.querySelector('li.card[data-strategy="yolo_filter"]');
    return card && Number(card.textContent.match(/Calls([\d,]+)/)[1].replace(/,/g, '')) > 0;
  }, null, { timeout: WAIT });
  assert.equal(await card.locator('table.errors tbody tr').count(), 6, 'every error kind has a row');
  step('strategies: calls and errors by kind shown');
  await shot(page, 'strategies');
}

async function alertsPage(page) {
  await page.goto(`${CONSOLE}/#alerts`);
  await page.waitForFunction(() => document.getElementById('alert-live').textContent === 'live', null,
    { timeout: WAIT });
  const count = async () => Number(await page.locator('#alert-count').textContent());
  const start = await count();
  // Alerts keep arriving without a reload.
  await page.waitForFunction((n) => Number(document.getElementById('alert-count').textContent) >= n + 2, start,
    { timeout: WAIT });
  const grown = await count();
  step(`alerts: the list grew live from ${start} to ${grown}`);
  // The newest alert that arrived live with a snapshot (the stream sends an
  // alert once its picture is encoded; only an alert whose snapshot was
  // skipped comes without one): it decodes at the size the alert states.
  const newest = page.locator('#alert-list li.alert.new:has(.pics img)').first();
  await newest.waitFor({ timeout: WAIT });
  const img = newest.locator('.pics img');
  await page.waitForFunction((node) => node.complete && node.naturalWidth > 0, await img.elementHandle(),
    { timeout: WAIT });
  const size = await img.evaluate((node) => [node.naturalWidth, node.naturalHeight, Number(node.getAttribute('width')),
    Number(node.getAttribute('height'))]);
  assert.deepEqual(size.slice(0, 2), size.slice(2), 'the decoded snapshot has the size the alert states');
  const links = await newest.locator('.pics a').evaluateAll((nodes) => nodes.map((a) => a.href));
  assert.ok(links.some((href) => href.endsWith('/snapshot.jpg')) && links.some((href) => href.endsWith('/crop.jpg')));
  for (const href of links) {
    const response = await fetch(href);
    assert.equal(response.status, 200, href);
    assert.equal(response.headers.get('content-type'), 'image/jpeg', href);
  }
  step(`alerts: the newest snapshot decodes at ${size[0]}x${size[1]}, its picture and crop links answer`);

  // Filters: the scene has people and cars (yolo_filter keeps both here).
  await page.waitForFunction(() => document.querySelectorAll('#filter-pattern option').length >= 3, null,
    { timeout: WAIT });
  const patterns = await page.locator('#filter-pattern option').evaluateAll((nodes) => nodes.map((o) => o.value));
  for (const pattern of patterns.filter(Boolean)) {
    await page.selectOption('#filter-pattern', pattern);
    // In one go: alerts keep arriving meanwhile.
    const [shown, counted] = await page.evaluate(() => [
      [...document.querySelectorAll('#alert-list li.alert')].filter((n) => !n.hidden).map((n) => n.dataset.pattern),
      Number(document.getElementById('alert-count').textContent),
    ]);
    assert.ok(shown.length > 0 && shown.every((p) => p === pattern), `filter ${pattern}: ${shown}`);
    assert.equal(counted, shown.length);
  }
  await page.selectOption('#filter-pattern', '');
  await page.selectOption('#filter-source', 'street');
  assert.equal(await page.locator('#alert-list li.alert[hidden]').count(), 0, 'every alert is from street');
  await page.selectOption('#filter-source', '');
  step(`alerts: the pattern filter shows only ${patterns.filter(Boolean).join(', then ')}`);
  await shot(page, 'alerts');

  // The badge counts alerts that arrive while another page is shown.
  await page.click('nav a[data-page="sources"]');
  await page.waitForFunction(() => {
    const badge = document.getElementById('alert-badge');
    return !badge.hidden && Number(badge.textContent) > 0;
  }, null, { timeout: WAIT });
  step('alerts: the badge counts alerts arriving on another page');
}

async function phoneWidth() {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems = [];
  watch(page, problems);
  for (const name of ['sources', 'strategies', 'alerts']) {
    await page.goto(`${CONSOLE}/#${name}`);
    await page.locator(`#page-${name} h1`).waitFor({ timeout: WAIT });
    await page.waitForSelector(name === 'alerts' ? '#alert-list li.alert' : `#page-${name} li.card`, { timeout: WAIT });
    await accessibleAndFits(page, `${name} at 390 px`);
  }
  await shot(page, 'alerts-phone');
  assert.deepEqual(problems, []);
  await context.close();
  step('every page fits a 390 px phone width, with labelled controls');
}

async function login() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  const problems = [];
  watch(page, problems);
  await page.goto(`${LOGIN}/`);
  await page.getByLabel('Access token').waitFor({ timeout: WAIT });
  assert.equal(await page.locator('nav').count(), 0, 'no console before logging in');
  assert.equal((await context.request.get(`${LOGIN}/v1/sources`)).status(), 401, 'the API wants the token');
  await shot(page, 'login');
  await accessibleAndFits(page, 'login');

  await page.getByLabel('Access token').fill(`${TOKEN}x`);
  const [refused] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(refused.status(), 401);
  await page.locator('[role=alert]', { hasText: 'wrong' }).waitFor({ timeout: WAIT });
  assert.deepEqual(await context.cookies(), [], 'a wrong token gets no cookie');
  step('login: the form is shown and a wrong token is refused');

  await page.getByLabel('Access token').fill(TOKEN);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await page.locator('nav a[data-page="sources"]').waitFor({ timeout: WAIT });
  assert.equal(page.url(), `${LOGIN}/`);
  assert.ok(!page.url().includes(TOKEN), 'the token is not in the URL');
  assert.ok(!(await page.content()).includes(TOKEN), 'the token is not in the page');
  const cookies = await context.cookies();
  assert.equal(cookies.length, 1);
  assert.equal(cookies[0].name, 'dshost_session');
  assert.ok(cookies[0].httpOnly, 'HttpOnly');
  assert.equal(cookies[0].sameSite, 'Strict');
  assert.ok(!cookies[0].value.includes(TOKEN), 'the cookie does not carry the token');
  assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read the session');
  assert.equal(await page.evaluate(async () => (await fetch('/v1/strategies')).status), 200);
  assert.ok(await page.locator('form.logout button').isVisible(), 'a log out button');
  step(`login: the right token logs in (a session cookie, HttpOnly, SameSite=Strict; neither the URL nor the page holds the token)`);

  await Promise.all([page.waitForNavigation(), page.click('form.logout button')]);
  await page.getByLabel('Access token').waitFor({ timeout: WAIT });
  assert.equal((await context.request.get(`${LOGIN}/v1/sources`)).status(), 401, 'logged out');
  step('login: log out ends the session');
  // The refused login's own 401 is the only error the browser may report.
  assert.deepEqual(problems.filter((p) => !p.includes('401')), []);
  await context.close();
}

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  watch(page, problems);
  await sourcesPage(page);
  await strategiesPage(page);
  await alertsPage(page);
  await accessibleAndFits(page, 'console at 1280 px');
  // Chromium reports the refused POST of the bad URI (on purpose) as an error.
  const refusedPost = problems.findIndex((p) => /status of 400 .*\/v1\/sources\)$/.test(p));
  if (refusedPost >= 0) problems.splice(refusedPost, 1);
  assert.deepEqual(problems, [], 'the console reported no errors');
  step('no console errors at 1280 px');
  await context.close();
  await phoneWidth();
  await login();
  console.log('console: all checks passed');
} finally {
  await browser.close();
}
