// A broadcast's report in the web app, against a real server: a broadcast with a goal and an
// A/B test on conversions, sent on the simulated clock; the recipients of B order, B wins; the
// Report section on the broadcast's page shows the same recipients, rates and per-template
// conversions (with their intervals) as GET /v1/broadcasts/{id}/report.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openBrowser, signIn, startServer, SCREENSHOTS } from './harness.mjs';

let server;
let b;

before(async () => {
  server = await startServer();
  b = await openBrowser();
});

after(async () => {
  await b?.close();
  await server?.stop();
});

/** Waits until `fn` holds (polling), else fails with `what`. */
async function eventually(fn, what, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out: ${what}`);
}

const pct = (rate) => (rate === null || rate === undefined ? '—' : `${(rate * 100).toFixed(1)}%`);

test('the report section of a broadcast shows what the report API answers', async () => {
  const { api } = server;
  for (const id of ['sale-a', 'sale-b']) await api('PUT', `/v1/templates/${id}`, { id, channel: 'email', subject: id, html: '<p>Sale</p>' });
  const users = Array.from({ length: 40 }, (_, i) => `s${String(i).padStart(2, '0')}`);
  await api('POST', '/v1/contacts/import', { list: 'shoppers', contacts: users.map((u) => ({ user_id: u, email: `${u}@example.com` })) });
  await api('POST', '/v1/clock/advance', { seconds: 1 });
  await api('PUT', '/v1/broadcasts/sale', {
    name: 'Winter sale',
    channel: 'email',
    template: 'sale-a',
    audience: { list: 'shoppers' },
    goal: { event: 'Order Completed', within: '3d' },
    test: { variants: ['sale-b'], share_percent: 50, decide_after: '1h', metric: 'conversions' },
  });
  await api('POST', '/v1/broadcasts/sale/send', {});
  let messages = [];
  await eventually(async () => {
    await api('POST', '/v1/clock/advance', { seconds: 60 });
    messages = (await api('GET', '/v1/messages?broadcast_id=sale&limit=100')).messages ?? [];
    return messages.length > 0 && messages.every((m) => m.status === 'sent') && (await api('GET', '/v1/broadcasts/sale')).waiting + messages.length === 40;
  }, 'the test share sent');
  const ofB = messages.filter((m) => m.template === 'sale-b');
  assert.ok(ofB.length > 0, 'someone got B');
  for (const m of ofB) {
    await api('POST', '/v1/track', { userId: m.recipient.split('@')[0], event: 'Order Completed', properties: { revenue: 30 } }, 'write');
  }
  await api('POST', '/v1/clock/advance', { seconds: 3600 });
  let report;
  await eventually(async () => {
    report = await api('GET', '/v1/broadcasts/sale/report');
    return report.totals.converted === ofB.length && report.winner === 'sale-b' && report.totals.entered === 40 && report.totals.sent === 40;
  }, 'the conversions counted and the winner chosen');

  const { page } = b;
  await signIn(page, server.base);
  await page.goto(`${server.base}/broadcasts/sale`);
  const section = page.getByTestId('broadcast-report');
  await section.waitFor();
  const figure = (name) => section.getByTestId(`bc-figure-${name}`).locator('.figure-value');
  await eventually(async () => (await figure('entered').innerText()) === '40', 'the recipients shown');
  assert.equal(await figure('sent').innerText(), String(report.totals.sent));
  assert.equal(await figure('conversion_rate').innerText(), pct(report.totals.conversion_rate));
  assert.match(await figure('revenue').innerText(), new RegExp(`${(30 * ofB.length).toFixed(2).replace('.', '\\.')}`));
  for (const v of report.variants) {
    const row = section.getByTestId(`bc-report-variant-${v.template}`);
    assert.equal(await row.getByTestId('bc-report-sent').innerText(), String(v.sent));
    const conversions = await row.getByTestId('bc-report-conversions').innerText();
    const c = v.per_sent.conversions;
    assert.equal(conversions, `${pct(c.rate)} (${(c.low * 100).toFixed(1)}–${pct(c.high)})`);
  }
  await section.getByTestId('bc-report-variant-sale-b').getByText('winner').waitFor();
  await page.screenshot({ path: join(SCREENSHOTS, 'broadcast-report.png') });
  assert.deepEqual(b.problems, []);
});
