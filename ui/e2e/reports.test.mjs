// Journey reports in the web app, against a real server with a simulated clock: a journey with
// an A/B test sends to twenty contacts; some open (a person, and a privacy proxy), some click,
// some buy a day later. The journey list shows the last 30 days from /v1/reports/overview; the
// report tab's chart data, headline figures, funnel, node table, variants and CSV are what
// /v1/journeys/{id}/report and /experiments answer for the same parameters, for days over 30
// days and hours over 7, for all versions and for one. The report's numbers open the contacts
// behind them, as /v1/journeys/{id}/people lists them (three contacts wait in a journey that
// delays), page by page and as CSV, each linking to the contact; a variant has its own report.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN_TOKEN, openBrowser, signIn, startServer, SCREENSHOTS } from './harness.mjs';

const PUBLIC = 'http://mail.example.test';
const PHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15';
const USERS = Array.from({ length: 20 }, (_, i) => `u${String(i).padStart(2, '0')}`);

let server;
let b;

before(async () => {
  server = await startServer(['--public-url', `${PUBLIC}/`]);
  b = await openBrowser();
  const link = '<a href="https://shop.example.com/cart">Your cart</a>';
  const journey = {
    id: 'cart',
    name: 'Cart reminder',
    goal: { event: 'Order Completed', revenue_property: 'total', currency: 'EUR' },
    nodes: [
      { id: 'start', type: 'trigger', event: 'Cart Abandoned' },
      { id: 'test', type: 'experiment', variants: [{ name: 'plain', percent: 40 }, { name: 'bold', percent: 40 }], holdout: 20, min_sample: 1000 },
      { id: 'mail-plain', type: 'send_email', template: 'cart-plain' },
      { id: 'mail-bold', type: 'send_email', template: 'cart-bold' },
    ],
    edges: [
      { from: 'start', to: 'test' },
      { from: 'test', to: 'mail-plain', output: 'plain' },
      { from: 'test', to: 'mail-bold', output: 'bold' },
    ],
    templates: [
      { id: 'cart-plain', channel: 'email', subject: 'Your cart', html: `<html><body><p>Still there? ${link}</p></body></html>` },
      { id: 'cart-bold', channel: 'email', subject: 'YOUR CART', html: `<html><body><p>STILL THERE? ${link}</p></body></html>` },
    ],
  };
  const saved = await server.api('PUT', '/v1/journeys/cart', journey);
  assert.equal(saved.valid, true, JSON.stringify(saved.errors));
  await server.api('POST', '/v1/journeys/cart/publish', {});
  await server.api('PUT', '/v1/journeys/idle', { id: 'idle', name: 'Idle', nodes: [{ id: 'start', type: 'trigger', event: 'Never' }], edges: [] });
  await server.api('POST', '/v1/journeys/idle/publish', {});
  await server.api('PUT', '/v1/journeys/slow', {
    id: 'slow',
    name: 'Slow',
    nodes: [
      { id: 'start', type: 'trigger', event: 'Slow Start' },
      { id: 'wait', type: 'delay', duration: '3d' },
    ],
    edges: [{ from: 'start', to: 'wait' }],
  });
  await server.api('POST', '/v1/journeys/slow/publish', {});

  for (const u of USERS) {
    await server.api('POST', '/v1/identify', { userId: u, traits: { email: `${u}@example.com` } }, 'write');
    await server.api('POST', '/v1/track', { userId: u, event: 'Cart Abandoned', properties: {} }, 'write');
  }
  for (const u of USERS.slice(0, 3)) await server.api('POST', '/v1/track', { userId: u, event: 'Slow Start', properties: {} }, 'write');
  await server.api('POST', '/v1/clock/advance', { seconds: 0 });
  await server.api('POST', '/v1/clock/advance', { seconds: 120 });
  const { messages } = await server.api('GET', '/v1/messages?limit=1000');
  assert.ok(messages.length >= 6, `the variants sent: ${messages.length}`);
  const hit = async (m, kind, ua) => {
    const token = new RegExp(`${PUBLIC}/t/${kind}/([A-Za-z0-9_.-]+)`).exec(m.html)[1];
    const r = await fetch(`${server.base}/t/${kind}/${token}`, { headers: { 'user-agent': ua }, redirect: 'manual' });
    assert.ok(r.status === 200 || r.status === 302, `${kind}: ${r.status}`);
  };
  // The first four open (the first through Apple's proxy first), the first two click; the
  // fifth's link is followed by a scanner.
  await hit(messages[0], 'o', 'Mozilla/5.0');
  for (const m of messages.slice(0, 4)) await hit(m, 'o', PHONE);
  for (const m of messages.slice(0, 2)) await hit(m, 'c', PHONE);
  await hit(messages[4], 'c', 'Barracuda Sentinel (EE)');
  // A day later, three buy (one of them in another currency: converted, no revenue added).
  await server.api('POST', '/v1/clock/advance', { seconds: 24 * 3600 });
  // Recipients are `{user}@example.com`.
  const users = [messages[0], messages[1], messages[5]].map((m) => m.recipient.split('@')[0]);
  assert.ok(users.every((u) => USERS.includes(u)), `buyers: ${JSON.stringify(users)}`);
  await server.api('POST', '/v1/track', { userId: users[0], event: 'Order Completed', properties: { total: '42.50', currency: 'EUR' } }, 'write');
  await server.api('POST', '/v1/track', { userId: users[1], event: 'Order Completed', properties: { total: 10, currency: 'USD' } }, 'write');
  await server.api('POST', '/v1/track', { userId: users[2], event: 'Order Completed', properties: { total: 7.5 } }, 'write');
  await server.api('POST', '/v1/clock/advance', { seconds: 0 });
  await signIn(b.page, server.base);
});

after(async () => {
  await b?.close();
  await server?.stop();
});

async function eventually(fn, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last === true) return;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  assert.fail(`${what} did not happen in ${ms} ms (last: ${last})`);
}

const pct = (r) => (r === null || r === undefined ? '—' : `${(r * 100).toFixed(1)}%`);
const LINES = ['sent', 'human_opened', 'human_clicked', 'converted', 'revenue'];

/** The chart's columns as the page should hold them for a report of the API. */
function chartOf(report) {
  return {
    x: report.series.map((p) => Math.floor(new Date(p.start).getTime() / 1000)),
    columns: Object.fromEntries(LINES.map((k) => [k, report.series.map((p) => p[k])])),
  };
}

/** Waits until the page's chart, funnel and node table show `report`. */
async function showsReport(page, report, what) {
  const want = chartOf(report);
  await eventually(async () => {
    const got = JSON.parse((await page.getByTestId('report-chart').getAttribute('data-chart')) ?? 'null');
    assert.deepEqual(got, want);
    return true;
  }, `${what}: the chart's data`);
  // The canvas is drawn.
  assert.ok((await page.locator('[data-testid=report-chart] canvas').count()) >= 1, `${what}: a canvas`);
  // The table behind the chart (opened once; it stays open): one row per bucket, the sends in
  // its second column.
  if (!(await page.locator('.report-chart details').evaluate((d) => d.open))) await page.getByText('The numbers behind the chart').click();
  const rows = page.getByRole('table', { name: 'Report over time' }).locator('tbody tr');
  assert.equal(await rows.count(), report.series.length, `${what}: a row per bucket`);
  const sentColumn = await rows.locator('td:nth-child(2)').allInnerTexts();
  assert.deepEqual(sentColumn.map(Number), report.series.map((p) => p.sent), `${what}: sends per bucket`);
  // Headline figures.
  const t = report.totals;
  assert.equal(await page.getByTestId('figure-entered').locator('.figure-value').innerText(), String(t.entered));
  assert.equal(await page.getByTestId('figure-sent').locator('.figure-value').innerText(), String(t.sent));
  assert.equal(await page.getByTestId('figure-open_rate').locator('.figure-value').innerText(), pct(t.open_rate));
  assert.match(await page.getByTestId('figure-open_rate').innerText(), new RegExp(`${pct(t.open_rate_all)} with machines`));
  assert.equal(await page.getByTestId('figure-click_rate').locator('.figure-value').innerText(), pct(t.click_rate));
  assert.equal(await page.getByTestId('figure-conversion_rate').locator('.figure-value').innerText(), pct(t.conversion_rate));
  assert.equal(await page.getByTestId('figure-revenue').locator('.figure-value').innerText(), new Intl.NumberFormat('en', { style: 'currency', currency: 'EUR' }).format(t.revenue));
  // The funnel: entered per node in the journey's order.
  const funnel = page.getByRole('table', { name: 'Funnel' }).locator('tbody tr');
  assert.deepEqual(await funnel.evaluateAll((trs) => trs.map((tr) => tr.dataset.node)), report.nodes.filter((n) => n.kind !== 'removed').map((n) => n.node));
  assert.deepEqual((await funnel.locator('td:nth-child(2)').allInnerTexts()).map(Number), report.nodes.filter((n) => n.kind !== 'removed').map((n) => n.entered));
  // A branch is a share of the node that leads to it (the experiment), not of the branch beside it.
  const entered = Object.fromEntries(report.nodes.map((n) => [n.node, n.entered]));
  assert.equal(
    await funnel.and(page.locator('[data-node="mail-bold"]')).locator('td:nth-child(4)').innerText(),
    pct(entered.test > 0 ? entered['mail-bold'] / entered.test : null),
    `${what}: mail-bold of the experiment`,
  );
  // The node table.
  for (const n of report.nodes) {
    const cells = await page.getByRole('table', { name: 'Nodes' }).locator(`tbody tr[data-node="${n.node}"] td`).allInnerTexts();
    assert.deepEqual(cells.slice(1, 4).map(Number), [n.entered, n.sent, n.delivered], `${what}: ${n.node}'s counts`);
    assert.equal(cells[4].split('\n')[0], pct(n.open_rate), `${what}: ${n.node}'s open rate`);
    assert.equal(cells[5].split('\n')[0], pct(n.click_rate), `${what}: ${n.node}'s click rate`);
    assert.equal(cells[6], pct(n.conversion_rate), `${what}: ${n.node}'s conversion rate`);
    assert.equal(Number(cells[7]), n.unsubscribed);
  }
}

test('the journey list shows the last 30 days of each journey from the overview', async () => {
  const { page } = b;
  const overview = await server.api('GET', '/v1/reports/overview?days=30');
  const cart = overview.journeys.find((j) => j.journey_id === 'cart');
  assert.ok(cart.sent >= 6 && cart.human_opened === 4 && cart.converted === 3, JSON.stringify(cart));
  for (const j of overview.journeys) {
    const row = page.locator(`tr[data-journey="${j.journey_id}"]`);
    await eventually(async () => (await row.locator('[data-figure=sent]').innerText()) === String(j.sent), `${j.journey_id}'s sends`);
    assert.equal(await row.locator('[data-figure=open_rate]').innerText(), pct(j.open_rate));
    assert.equal(await row.locator('[data-figure=click_rate]').innerText(), pct(j.click_rate));
    assert.equal(await row.locator('[data-figure=conversion_rate]').innerText(), pct(j.conversion_rate));
    assert.equal(await row.locator('[data-figure=revenue]').innerText(), j.revenue.toFixed(2));
  }
  await page.screenshot({ path: join(SCREENSHOTS, 'reports-list.png'), fullPage: true });
});

test('the report tab shows what the report API answers, and its CSV', async () => {
  const { page } = b;
  await page.getByRole('link', { name: 'Cart reminder' }).click();
  await page.getByRole('navigation', { name: 'Journey' }).getByRole('link', { name: 'Report' }).click();
  await page.getByRole('heading', { name: /Cart reminder/ }).waitFor();
  const tz = await page.getByLabel('Time zone').inputValue();
  const ask = (q) => server.api('GET', `/v1/journeys/cart/report?${new URLSearchParams({ tz, ...q })}`);

  // The last 30 days, by day: the default.
  const days = await ask({ from: '29d', bucket: 'day' });
  assert.equal(days.series.length, 30);
  assert.equal(days.totals.human_opened, 4);
  assert.equal(days.totals.opened, 5, 'a click counts as an open: the scanner\'s too');
  assert.equal(days.totals.revenue, 50);
  await showsReport(page, days, '30 days by day');
  await page.evaluate(() => document.querySelector('.main')?.scrollTo(0, 0));
  await page.screenshot({ path: join(SCREENSHOTS, 'reports-tab.png') });

  // The last 7 days by hour.
  await page.getByLabel('Range').selectOption('7');
  await page.getByLabel('Bucket').selectOption('hour');
  const hours = await ask({ from: '167h', bucket: 'hour' });
  assert.equal(hours.series.length, 168);
  await showsReport(page, hours, '7 days by hour');

  // One version (the only one): the same figures, asked with `version`.
  await page.getByLabel('Version').selectOption('1');
  await showsReport(page, await ask({ from: '167h', bucket: 'hour', version: '1' }), 'version 1');

  // The address keeps the parameters: a reload shows the same report.
  await eventually(async () => new URL(page.url()).search === '?days=7&bucket=hour&version=1', 'the parameters in the address');
  await page.reload();
  // The version's option is there once the versions have loaded.
  await eventually(async () => {
    assert.deepEqual([await page.getByLabel('Range').inputValue(), await page.getByLabel('Bucket').inputValue(), await page.getByLabel('Version').inputValue()], ['7', 'hour', '1']);
    return true;
  }, 'the parameters after a reload');
  await showsReport(page, await ask({ from: '167h', bucket: 'hour', version: '1' }), 'version 1 after a reload');

  // Hours over 90 days would be too many buckets: the page asks for days.
  await page.getByLabel('Range').selectOption('90');
  assert.equal(await page.getByLabel('Bucket').inputValue(), 'day');
  await showsReport(page, await ask({ from: '89d', bucket: 'day', version: '1' }), '90 days by day');

  // The variants, with their intervals and lift over the holdout.
  const { experiments } = await server.api('GET', '/v1/journeys/cart/experiments');
  const x = experiments[0];
  const variantRows = page.getByRole('table', { name: 'Variants of test' }).locator('tbody tr');
  assert.deepEqual(await variantRows.evaluateAll((trs) => trs.map((tr) => tr.dataset.variant)), [...x.variants.map((v) => v.name), 'holdout']);
  for (const v of [...x.variants, { ...x.holdout, name: 'holdout' }]) {
    const cells = await page.locator(`tr[data-variant="${v.name}"] td`).allInnerTexts();
    assert.deepEqual(cells.slice(1, 3).map(Number), [v.entered, v.converted], `${v.name}'s counts`);
    assert.ok(cells[3].startsWith(pct(v.rate)), `${v.name}'s rate: ${cells[3]}`);
    if (v.rate_low !== null) assert.ok(cells[3].includes(`${pct(v.rate_high)})`), `${v.name}'s interval: ${cells[3]}`);
    if (v.lift_over_holdout?.relative != null) assert.ok(cells[4].includes(`${(v.lift_over_holdout.relative * 100).toFixed(1)}%`), `${v.name}'s lift: ${cells[4]}`);
  }

  // The CSV download is the server's CSV for the same parameters.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download CSV' }).click()]);
  assert.equal(download.suggestedFilename(), 'cart-report.csv');
  const saved = readFileSync(await download.path(), 'utf8');
  const r = await fetch(`${server.base}/v1/journeys/cart/report?${new URLSearchParams({ from: '89d', bucket: 'day', tz, version: '1' })}`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, accept: 'text/csv' },
  });
  assert.equal(saved, await r.text());
  assert.equal(saved.trim().split('\n').length, 91, 'a header and 90 days');

  await page.getByRole('heading', { name: 'Experiments' }).scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(SCREENSHOTS, 'reports-tab-end.png') });
  assert.deepEqual(b.problems, []);
});

/** The rows the people page shows: each row's cursor, contact and user id. */
async function shownPeople(page) {
  return page.getByRole('table', { name: 'People' }).locator('tbody tr[data-cursor]').evaluateAll((trs) =>
    trs.map((tr) => ({ cursor: Number(tr.dataset.cursor), contact_id: Number(tr.dataset.contact), user: tr.querySelector('td a')?.textContent })),
  );
}

/** The same rows as the people API answers them for `query`, all pages `limit` at a time. */
async function apiPeople(journey, query, limit = 1000) {
  const rows = [];
  let after;
  do {
    const q = new URLSearchParams({ ...query, limit: String(limit), ...(after ? { after: String(after) } : {}) });
    const r = await server.api('GET', `/v1/journeys/${journey}/people?${q}`);
    rows.push(...r.people);
    after = r.next_cursor;
  } while (after);
  return rows.map((p) => ({ cursor: p.cursor, contact_id: p.contact_id, user: p.user_id }));
}

/** Waits until the people page shows `want` (rows of apiPeople). */
async function showsPeople(page, want, what) {
  await eventually(async () => {
    assert.deepEqual(await shownPeople(page), want);
    return true;
  }, what);
}

test('a number of the report opens the contacts behind it', async () => {
  const { page } = b;
  await page.goto(`${server.base}/journeys/cart/report`);
  await page.getByRole('heading', { name: /Cart reminder/ }).waitFor();
  const tz = await page.getByLabel('Time zone').inputValue();
  const report = await server.api('GET', `/v1/journeys/cart/report?${new URLSearchParams({ tz, from: '29d', bucket: 'day' })}`);
  await eventually(async () => (await page.getByTestId('figure-sent').locator('.figure-value').innerText()) === String(report.totals.sent), 'the report');

  // The headline's sends: every message of the journey, as many as the figure.
  await page.getByTestId('figure-sent').locator('.figure-value a').click();
  await eventually(async () => new URL(page.url()).pathname === '/journeys/cart/people' && new URL(page.url()).search === '?show=messaged', 'the people page');
  const messaged = await apiPeople('cart', { show: 'messaged' });
  assert.equal(messaged.length, report.totals.sent, 'the list is the number clicked');
  await showsPeople(page, messaged, 'the messages');
  await page.screenshot({ path: join(SCREENSHOTS, 'reports-people.png'), fullPage: true });

  // The CSV is the server's for the same parameters.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download CSV' }).click()]);
  assert.equal(download.suggestedFilename(), 'cart-messaged.csv');
  const csv = await fetch(`${server.base}/v1/journeys/cart/people?show=messaged&limit=1000`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, accept: 'text/csv' },
  });
  const saved = readFileSync(await download.path(), 'utf8');
  assert.equal(saved, await csv.text());
  assert.equal(saved.trim().split('\n').length, messaged.length + 1, 'a header and a row per message');

  // Five a page: More adds the next page until there is none.
  await page.goto(`${server.base}/journeys/cart/people?show=messaged&limit=5`);
  const firstPage = await server.api('GET', '/v1/journeys/cart/people?show=messaged&limit=5');
  await showsPeople(page, messaged.slice(0, 5), 'the first page');
  assert.deepEqual((await shownPeople(page)).map((r) => r.cursor), firstPage.people.map((p) => p.cursor));
  let pages = 1;
  const more = page.getByRole('button', { name: 'More' });
  while (await more.isVisible()) {
    await more.click();
    pages += 1;
    // The page has come (a full last page is followed by an empty one). The button can go
    // between the two looks, so the second waits a moment, not Playwright's 30 s.
    await eventually(async () => !(await more.isVisible()) || (await more.isEnabled({ timeout: 500 })), `page ${pages} loaded`);
    await showsPeople(page, messaged.slice(0, Math.min(5 * pages, messaged.length)), `page ${pages}`);
  }
  assert.ok(pages >= 3, `pages: ${pages}`);
  await showsPeople(page, messaged, 'every page');

  // A node's people who opened (people, not machines), then narrowed by status and channel,
  // from the report of the last 7 days (all of the activity is in them), which the list keeps
  // for the way back.
  await page.goto(`${server.base}/journeys/cart/report?days=7`);
  const bold = report.nodes.find((n) => n.node === 'mail-bold');
  const plain = report.nodes.find((n) => n.node === 'mail-plain');
  const opener = [bold, plain].find((n) => n.human_opened > 0);
  await page.getByRole('table', { name: 'Nodes' }).locator(`tr[data-node="${opener.node}"] td[data-figure=opened] a`).click();
  await eventually(async () => new URL(page.url()).search === `?show=messaged&node=${opener.node}&status=opened&report=days%3D7`, 'the openers\' address');
  const opened = await apiPeople('cart', { show: 'messaged', node: opener.node, status: 'opened' });
  assert.equal(opened.length, opener.human_opened);
  await showsPeople(page, opened, `who opened ${opener.node}`);
  assert.equal(await page.getByTestId('people-title').innerText(), `Messages of ${opener.node} opened by people`);
  await page.getByLabel('Status').selectOption('clicked');
  await showsPeople(page, await apiPeople('cart', { show: 'messaged', node: opener.node, status: 'clicked' }), `who clicked ${opener.node}`);
  await page.getByLabel('Channel').selectOption('sms');
  await showsPeople(page, [], 'no SMS');
  assert.equal(new URL(page.url()).search, `?show=messaged&node=${opener.node}&status=clicked&channel=sms&report=days%3D7`);
  await page.getByRole('link', { name: '← Report' }).click();
  await eventually(async () => new URL(page.url()).search === '?days=7' && (await page.getByLabel('Range').inputValue()) === '7', 'back to the 7 days');

  // The headline's conversions: the journey's three.
  await page.goto(`${server.base}/journeys/cart/report`);
  await page.getByTestId('figure-conversion_rate').getByRole('link', { name: `${report.totals.converted} converted` }).click();
  const converted = await apiPeople('cart', { show: 'converted' });
  assert.equal(converted.length, report.totals.converted);
  assert.equal(converted.length, 3);
  await showsPeople(page, converted, 'the conversions');

  // Who waits at a node now, and until when; then a row leads to the contact.
  // With a version chosen: who waits now is counted over all versions, and so listed.
  await page.goto(`${server.base}/journeys/slow/report?version=1`);
  const stats = await server.api('GET', '/v1/journeys/slow/stats');
  const waitingNow = stats.nodes.find((n) => n.node === 'wait').waiting;
  assert.equal(waitingNow, 3);
  const cell = page.getByRole('table', { name: 'Funnel' }).locator('tr[data-node="wait"] td[data-figure=waiting]');
  await eventually(async () => (await cell.innerText()) === '3', 'the funnel\'s waiting');
  assert.equal(await cell.locator('a').getAttribute('href'), '/journeys/slow/people?show=waiting&node=wait&report=version%3D1');
  await cell.locator('a').click();
  const waiting = await apiPeople('slow', { show: 'waiting', node: 'wait' });
  assert.equal(waiting.length, waitingNow);
  await showsPeople(page, waiting, 'who waits');
  const first = await server.api('GET', '/v1/journeys/slow/people?show=waiting&node=wait&limit=1');
  const until = await page.getByRole('table', { name: 'People' }).locator('tbody tr').first().locator('td:nth-child(5)').innerText();
  assert.equal(until, await page.evaluate((t) => new Date(t).toLocaleString(), first.people[0].wake_at), 'until when');
  await page.getByRole('table', { name: 'People' }).getByRole('link', { name: waiting[0].user }).click();
  await eventually(async () => new URL(page.url()).pathname === `/contacts/${waiting[0].contact_id}`, 'the contact page');
  await page.getByRole('heading', { name: new RegExp(waiting[0].user) }).waitFor();
  assert.deepEqual(b.problems, []);
});

test('a variant has its own report, kept in the address', async () => {
  const { page } = b;
  await page.goto(`${server.base}/journeys/cart/report`);
  await page.getByRole('heading', { name: /Cart reminder/ }).waitFor();
  const tz = await page.getByLabel('Time zone').inputValue();
  await page.getByRole('button', { name: 'Report of bold' }).click();
  await eventually(async () => new URL(page.url()).search === '?variant=test%3Abold', 'the variant in the address');
  const bold = await server.api('GET', `/v1/journeys/cart/report?${new URLSearchParams({ tz, from: '29d', bucket: 'day', variant: 'test:bold' })}`);
  const all = await server.api('GET', `/v1/journeys/cart/report?${new URLSearchParams({ tz, from: '29d', bucket: 'day' })}`);
  assert.notEqual(bold.totals.sent, all.totals.sent, 'the variant sends less than the journey');
  const sent = page.getByTestId('figure-sent').locator('.figure-value');
  await eventually(async () => (await sent.innerText()) === String(bold.totals.sent), 'the variant\'s sends');
  await page.getByTestId('variant-shown').waitFor();
  // A variant's totals are no list of the people API: no links.
  assert.equal(await sent.locator('a').count(), 0);
  await page.reload();
  await eventually(async () => (await sent.innerText()) === String(bold.totals.sent), 'the variant after a reload');
  await page.getByTestId('variant-shown').getByRole('button', { name: 'Whole journey' }).click();
  await eventually(async () => (await sent.innerText()) === String(all.totals.sent) && new URL(page.url()).search === '', 'the whole journey again');
  assert.deepEqual(b.problems, []);
});
