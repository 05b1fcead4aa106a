// "Simulate" in the builder, against a real server: the abandoned-cart example is a draft (never
// published); the builder's Simulate action runs it on synthetic contacts and shows, on each
// canvas node, the entries the server predicted, and in its dialog the totals, the per-day chart,
// the busiest hours, the suppression reasons and the assumptions, as the API answered them. The
// same request made again through the API with the answer's start gives the same prediction, and
// the server's own contacts and messages are untouched.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADMIN_TOKEN, openBrowser, signIn, startServer, SCREENSHOTS } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const JOURNEY = readFileSync(resolve(here, '../../examples/journeys/abandoned-cart.yaml'), 'utf8');

let server;
let b;

before(async () => {
  server = await startServer();
  b = await openBrowser();
  const r = await fetch(server.base + '/v1/journeys/abandoned-cart', {
    method: 'PUT',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/yaml' },
    body: JOURNEY,
  });
  const saved = await r.json();
  assert.equal(saved.valid, true, JSON.stringify(saved.errors));
});

after(async () => {
  await b?.close();
  await server?.stop();
});

test('Simulate shows the predicted counts on the canvas and the prediction beside it', async () => {
  const { page, problems } = b;
  const before = [await server.api('GET', '/v1/contacts?limit=1000'), await server.api('GET', '/v1/messages?limit=1000')];
  await signIn(page, server.base);
  await page.goto(server.base + '/journeys/abandoned-cart');
  await page.getByTestId('node-cart-email').waitFor();

  await page.getByRole('button', { name: 'Simulate…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Simulate' });
  await dialog.getByLabel('Contacts').fill('2000');
  await dialog.getByLabel('Days').fill('7');
  await dialog.getByLabel('Seed').fill('5');
  const scenario = { behaviour: [{ event: 'Order Completed', after: 'entry', probability: '20%', delay: { median: '20h' }, properties: { revenue: 59 } }] };
  await dialog.getByLabel('Scenario (JSON, optional)').fill(JSON.stringify(scenario));
  const answered = page.waitForResponse((r) => r.url().endsWith('/v1/journeys/abandoned-cart/simulate') && r.request().method() === 'POST');
  await dialog.getByTestId('run-simulation').click();
  await dialog.getByTestId('simulating').waitFor();
  assert.equal(await dialog.getByTestId('run-simulation').textContent(), 'Simulating…');
  const response = await answered;
  assert.equal(response.status(), 200);
  const p = await response.json();
  assert.deepEqual(JSON.parse(response.request().postData()), { contacts: 2000, days: 7, seed: 5, scenario });
  await dialog.getByTestId('simulation-result').waitFor();

  // The dialog's figures are the answer's.
  const figure = async (name) => dialog.getByTestId(`sim-figure-${name}`).getAttribute('data-value');
  assert.equal(await figure('entered'), String(p.entered));
  assert.ok(p.entered > 1000, `entered ${p.entered}`);
  assert.equal(await figure('emails-sent'), String(p.messages.totals.email.sent));
  assert.equal(await figure('SMS-sent'), String(p.messages.totals.sms.sent));
  assert.equal(await figure('conversions'), String(p.conversions.count));
  assert.ok(p.conversions.count > 0);
  const chart = JSON.parse(await dialog.getByTestId('simulation-chart').getAttribute('data-chart'));
  assert.deepEqual(
    chart.series.email,
    p.messages.per_day.map((d) => d.email.sent),
  );
  assert.equal(chart.x.length, 7);
  assert.ok((await dialog.getByTestId('simulation-chart').locator('canvas').count()) > 0, 'uPlot drew the chart');
  const peakEmail = dialog.getByTestId('peak-email');
  assert.match(await peakEmail.textContent(), new RegExp(`${p.messages.peak_hour.email.messages}$`));
  assert.equal(await dialog.getByTestId('suppressed-reason').count(), Object.keys(p.messages.suppressed_reasons).length);
  const sources = await dialog.getByTestId('assumption').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-source')));
  assert.deepEqual(
    sources,
    p.assumptions.map((a) => a.source),
  );
  assert.ok(sources.includes('scenario') && sources.includes('default'), sources.join());
  const defaults = p.assumptions.filter((a) => a.source === 'default').length;
  assert.match(await dialog.getByTestId('defaults-warning').textContent(), new RegExp(`^${defaults} of ${p.assumptions.length} rules`));
  await page.screenshot({ path: join(SCREENSHOTS, 'simulate-dialog.png') });

  // Closed, the canvas keeps each node's predicted entries.
  await dialog.getByRole('button', { name: /^Close/ }).click();
  for (const n of p.funnel) {
    const badge = page.getByTestId(`sim-${n.node}-entered`);
    await badge.waitFor();
    assert.equal(await badge.getAttribute('data-value'), String(n.entered), n.node);
  }
  const email = p.funnel.find((n) => n.node === 'cart-email');
  assert.ok(email.entered > 0 && email.sent > 0, JSON.stringify(email));
  assert.equal(await page.getByTestId('sim-cart-email-sent').getAttribute('data-value'), String(email.sent));
  await page.screenshot({ path: join(SCREENSHOTS, 'simulate-canvas.png') });

  // The same request again, from the same start: the same prediction; the server untouched.
  const again = await server.api('POST', '/v1/journeys/abandoned-cart/simulate', { contacts: 2000, days: 7, seed: 5, scenario, start: p.period.start });
  assert.deepEqual(again.funnel, p.funnel);
  assert.deepEqual(again.messages, p.messages);
  assert.deepEqual(again.conversions, p.conversions);
  assert.deepEqual([await server.api('GET', '/v1/contacts?limit=1000'), await server.api('GET', '/v1/messages?limit=1000')], before);

  await page.getByRole('button', { name: 'Clear simulation' }).click();
  assert.equal(await page.getByTestId('sim-cart-email').count(), 0);
  assert.deepEqual(problems, []);
});
