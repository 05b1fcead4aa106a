// Broadcasts in the web app, against a real server: a draft written with mistakes shows the
// server's errors at their fields, fixed it is saved, test-sent, sent after a confirmation that
// names the audience, and its progress reaches `sent` with one message for each contact of the
// list but the excluded one; a broadcast at 1 message a second (on the system clock) is paused,
// resumed and cancelled with its buttons, and stops there; a broadcast with an A/B test made in
// the form keeps its test through an edit, shows each variant's counts, then the winner once the
// simulated clock passes its decision time, and lists its messages, one per recipient.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openBrowser, signIn, startServer, SCREENSHOTS } from './harness.mjs';

let server;
let b;

before(async () => {
  server = await startServer();
  b = await openBrowser();
  await server.api('PUT', '/v1/templates/news', { id: 'news', channel: 'email', name: 'Monthly news', subject: 'News', html: '<p>Hello {{ contact.first_name }}</p>' });
  await server.api('PUT', '/v1/templates/sale-sms', { id: 'sale-sms', channel: 'sms', body: 'Sale!' });
  await server.api('POST', '/v1/contacts/import', {
    list: 'readers',
    contacts: ['ann', 'bob', 'cy', 'dee'].map((u) => ({ user_id: u, email: `${u}@example.com`, traits: { first_name: u } })),
  });
  await server.api('POST', '/v1/contacts/import', { list: 'press', contacts: [{ user_id: 'dee', email: 'dee@example.com' }] });
  await server.api('POST', '/v1/clock/advance', { seconds: 1 });
  await signIn(b.page, server.base);
});

after(async () => {
  await b?.close();
  await server?.stop();
});

/** Waits until `fn` holds (polling), else fails with `what`. */
async function eventually(fn, what, ms = 15_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`${what} did not happen in ${ms} ms (last: ${JSON.stringify(last)})`);
}

/** The messages of broadcast `id`, by the user id of their contact. */
async function messagesByUser(srv, id) {
  const { messages } = await srv.api('GET', '/v1/messages?limit=1000');
  const byUser = {};
  for (const m of messages.filter((m) => m.idempotency_key.startsWith(`broadcast:${id}:`))) (byUser[m.user_id] ??= []).push(m);
  return byUser;
}

test('a draft with mistakes shows them at their fields; fixed, test-sent and sent, it reaches everyone once', async () => {
  const { page } = b;
  await page.getByRole('link', { name: 'Broadcasts', exact: true }).click();
  await page.getByRole('heading', { name: 'Broadcasts' }).waitFor();
  await page.getByText('No broadcasts yet').waitFor();
  await page.getByRole('button', { name: 'New broadcast' }).click();

  await page.getByLabel('Name').fill('November news');
  // The template select offers the templates of the channel.
  const template = page.getByLabel('Template');
  assert.deepEqual(await template.locator('option').allInnerTexts(), ['— choose an email template —', 'Monthly news']);
  await page.getByLabel('Channel').selectOption('sms');
  assert.deepEqual(await template.locator('option').allInnerTexts(), ['— choose an SMS template —', 'sale-sms']);
  await page.getByLabel('Channel').selectOption('email');
  await page.getByLabel('Audience', { exact: true }).selectOption('list:readers');
  await page.getByTestId('audience-size').getByText(/^4 contacts now;/).waitFor();
  await page.getByRole('button', { name: 'Add an exclusion' }).click();
  await page.getByLabel('Exclusion 1', { exact: true }).selectOption('list:press');
  // The server counts the audience minus the exclusion: dee is in both lists.
  await page.getByTestId('audience-size').getByText(/^3 contacts now, not counting the excluded;/).waitFor();
  // Two mistakes: no template, and a local time that is none.
  await page.getByLabel('Deliver at a local time').check();
  await page.getByLabel('Local time (HH:MM)').fill('25:00');
  await b.expectingHttpErrors(async () => {
    await page.getByRole('button', { name: 'Create draft' }).click();
    await page.getByTestId('error-template').waitFor();
  });
  assert.equal(await page.getByTestId('error-template').innerText(), 'must name a template (1-200 characters)');
  assert.match(await page.getByTestId('error-local_time').innerText(), /`25:00` is not a time of day/);
  assert.equal(await page.getByTestId('error-audience').count(), 0);
  await page.screenshot({ path: join(SCREENSHOTS, 'broadcast-errors.png') });

  // A rate that is no number is caught before asking the server.
  await page.getByLabel('Send rate').fill('fast');
  await page.getByRole('button', { name: 'Create draft' }).click();
  assert.match(await page.getByTestId('error-rate_per_second').innerText(), /not a whole number/);
  await page.getByLabel('Send rate').fill('');

  await template.selectOption('news');
  await page.getByLabel('Local time (HH:MM)').fill('09:00');
  await page.getByLabel('Deliver at a local time').uncheck();
  await page.getByRole('button', { name: 'Create draft' }).click();
  await page.getByRole('heading', { name: 'November news' }).waitFor();
  const status = page.getByTestId('broadcast-status');
  assert.equal(await status.getAttribute('data-status'), 'draft');
  const id = decodeURIComponent(new URL(page.url()).pathname.split('/')[2]);
  const stored = await server.api('GET', `/v1/broadcasts/${id}`);
  assert.deepEqual(stored.document, {
    name: 'November news',
    channel: 'email',
    template: 'news',
    audience: { list: 'readers' },
    exclude: [{ list: 'press' }],
    send_at: null,
    local_time: null,
    timezone: null,
    rate_per_second: null,
    ignore_quiet_hours: false,
    ignore_frequency_caps: false,
    test: null,
    goal: null,
  });
  assert.deepEqual(await page.getByTestId('overrides').locator('li').allInnerTexts(), ['Waits for quiet hours and blocked dates to end', 'Respects frequency caps']);
  // A draft can be edited, deleted, sent or cancelled, not paused.
  for (const name of ['Edit', 'Send…', 'Delete', 'Cancel broadcast']) assert.equal(await page.getByRole('button', { name, exact: true }).count(), 1, name);
  assert.equal(await page.getByRole('button', { name: 'Pause' }).count(), 0);

  // Edited, the form comes back as saved; the override is recorded.
  await page.getByRole('button', { name: 'Edit' }).click();
  assert.equal(await page.getByLabel('Name').inputValue(), 'November news');
  // A select shows its saved value once its options (the lists and segments) have loaded.
  await eventually(async () => (await page.getByLabel('Exclusion 1', { exact: true }).inputValue()) === 'list:press', 'the saved exclusion in the form');
  await page.getByLabel('Ignore frequency caps').check();
  await page.getByRole('button', { name: 'Save draft' }).click();
  await page.getByTestId('overrides').getByText('Ignores frequency caps').waitFor();
  assert.equal((await server.api('GET', `/v1/broadcasts/${id}`)).document.ignore_frequency_caps, true);

  // A test send to two addresses, one of them no address: each with its own answer.
  await page.getByLabel(/Email addresses/).fill('qa@example.com\nnot-an-address');
  await b.expectingHttpErrors(async () => {
    await page.getByRole('button', { name: 'Send test to 2' }).click();
    await page.getByRole('table', { name: 'Test sends' }).locator('tr').nth(1).waitFor();
  });
  const results = await page.getByRole('table', { name: 'Test sends' }).locator('tr').allInnerTexts();
  assert.match(results[0], /^qa@example\.com\tqueued/);
  assert.match(results[1], /^not-an-address\trefused\t.*invalid/);
  await eventually(async () => (await server.api('GET', '/v1/messages?limit=1000')).messages.some((m) => m.recipient === 'qa@example.com' && m.idempotency_key.startsWith('test-send:')), 'the test message');

  // Sending: the confirmation names the audience and its size.
  await page.getByRole('button', { name: 'Send…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Send the broadcast' });
  await dialog.getByTestId('send-audience').waitFor();
  assert.match(await dialog.getByTestId('send-audience').innerText(), /^To the 3 contacts in list “readers” and in none of list “press”, as counted now\./);
  assert.equal(await dialog.getByTestId('send-test').count(), 0);
  await dialog.getByText('Ignores frequency caps').waitFor();
  await page.screenshot({ path: join(SCREENSHOTS, 'broadcast-confirm.png') });
  await dialog.getByRole('button', { name: 'Send now' }).click();

  await eventually(async () => (await status.getAttribute('data-status')) === 'sent' && (await page.getByTestId('messages-sent').innerText()) === '3', 'sent with 3 messages sent');
  assert.equal(await page.getByTestId('progress-text').innerText(), '3 of 3 contacts reached (100%).');
  const progress = page.getByLabel('Contacts reached');
  assert.equal(await progress.getAttribute('value'), '3');
  assert.equal(await progress.getAttribute('max'), '3');
  for (const s of ['queued', 'suppressed', 'failed', 'paused', 'cancelled']) assert.equal(await page.getByTestId(`messages-${s}`).innerText(), '0', s);
  // Nothing is left to do with a sent broadcast.
  for (const name of ['Edit', 'Send…', 'Delete', 'Pause', 'Resume', 'Cancel broadcast']) assert.equal(await page.getByRole('button', { name, exact: true }).count(), 0, name);
  await page.screenshot({ path: join(SCREENSHOTS, 'broadcast-sent.png') });

  // One message for each reader, none for the excluded one.
  const byUser = await messagesByUser(server, id);
  assert.deepEqual(Object.keys(byUser).sort(), ['ann', 'bob', 'cy']);
  for (const [user, ms] of Object.entries(byUser)) {
    assert.equal(ms.length, 1, user);
    assert.equal(ms[0].recipient, `${user}@example.com`);
    assert.equal(ms[0].status, 'sent');
  }

  // The list shows it, with its counts.
  await page.getByRole('link', { name: '← Broadcasts' }).click();
  const row = page.getByTestId(`broadcast-${id}`);
  await row.waitFor();
  const cells = await row.locator('td').allInnerTexts();
  assert.deepEqual(cells.slice(1, 7), ['sent', 'list “readers”', '3 / 3', '3', '0', '0']);
  assert.deepEqual(b.problems, []);
});

test('a broadcast at 1 message a second is paused, resumed and cancelled with its buttons', async () => {
  // The system clock: a send rate spaces the messages out in real time.
  const live = await startServer(['--clock', 'system']);
  const lb = await openBrowser();
  try {
    await live.api('PUT', '/v1/templates/news', { id: 'news', channel: 'email', subject: 'News', html: '<p>News</p>' });
    const contacts = Array.from({ length: 40 }, (_, i) => ({ user_id: `reader${i}`, email: `reader${i}@example.com` }));
    await live.api('POST', '/v1/contacts/import', { list: 'readers', contacts });
    const { page } = lb;
    await signIn(page, live.base);
    await page.getByRole('link', { name: 'Broadcasts', exact: true }).click();
    await page.getByRole('button', { name: 'New broadcast' }).click();
    await page.getByLabel('Name').fill('Slow news');
    await page.getByLabel('Template').selectOption('news');
    await page.getByLabel('Audience', { exact: true }).selectOption('list:readers');
    await page.getByLabel('Send rate').fill('1');
    await page.getByRole('button', { name: 'Create draft' }).click();
    await page.getByRole('heading', { name: 'Slow news' }).waitFor();
    const id = decodeURIComponent(new URL(page.url()).pathname.split('/')[2]);
    assert.equal((await live.api('GET', `/v1/broadcasts/${id}`)).document.rate_per_second, 1);

    await page.getByRole('button', { name: 'Send…' }).click();
    await page.getByRole('dialog', { name: 'Send the broadcast' }).getByText(/1 message a second/).waitFor();
    await page.getByRole('dialog', { name: 'Send the broadcast' }).getByRole('button', { name: 'Send now' }).click();
    const status = page.getByTestId('broadcast-status');
    const reached = async () => Number(/^(\d+) of 40/.exec(await page.getByTestId('progress-text').innerText())?.[1] ?? -1);
    await eventually(async () => (await status.getAttribute('data-status')) === 'sending' && (await reached()) >= 2, 'sending, 2 reached');
    assert.equal(await page.getByRole('button', { name: 'Resume' }).count(), 0);

    await page.getByRole('button', { name: 'Pause' }).click();
    await eventually(async () => (await status.getAttribute('data-status')) === 'paused', 'paused');
    await page.getByRole('button', { name: 'Resume' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Pause' }).count(), 0);
    // Paused, nobody more is reached.
    const atPause = (await live.api('GET', `/v1/broadcasts/${id}`)).processed;
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal((await live.api('GET', `/v1/broadcasts/${id}`)).processed, atPause);
    assert.equal(await reached(), atPause);
    await page.screenshot({ path: join(SCREENSHOTS, 'broadcast-paused.png') });

    await page.getByRole('button', { name: 'Resume' }).click();
    await eventually(async () => (await status.getAttribute('data-status')) === 'sending' && (await reached()) > atPause, 'sending again, more reached');

    // Cancelled (the confirmation is accepted): it stops where it stood.
    await page.getByRole('button', { name: 'Cancel broadcast' }).click();
    await eventually(async () => (await status.getAttribute('data-status')) === 'cancelled', 'cancelled');
    for (const name of ['Pause', 'Resume', 'Cancel broadcast']) assert.equal(await page.getByRole('button', { name, exact: true }).count(), 0, name);
    const atCancel = (await live.api('GET', `/v1/broadcasts/${id}`)).processed;
    assert.ok(atCancel < 40, `cancelled after ${atCancel} of 40`);
    await new Promise((r) => setTimeout(r, 2000));
    const after = await live.api('GET', `/v1/broadcasts/${id}`);
    assert.equal(after.processed, atCancel);
    // Nobody got it twice, and only those reached got it.
    const byUser = await messagesByUser(live, id);
    for (const [user, ms] of Object.entries(byUser)) assert.equal(ms.length, 1, user);
    assert.ok(Object.keys(byUser).length <= atCancel);
    assert.deepEqual(lb.problems, []);
  } finally {
    await lb.close();
    await live.stop();
  }
});

test('an A/B test made in the form shows each variant, then the winner; the messages list one per recipient', async () => {
  // Opens are recorded through the open pixel, which needs a public URL; the pixel's path is
  // fetched from the server itself.
  const PUBLIC = 'http://mail.example.test';
  const srv = await startServer(['--public-url', `${PUBLIC}/`]);
  const ab = await openBrowser();
  try {
    for (const [id, subject] of [
      ['news-a', 'Our November news'],
      ['news-b', 'Three things for you'],
    ])
      await srv.api('PUT', `/v1/templates/${id}`, { id, channel: 'email', subject, html: '<html><body><p>Hello</p></body></html>' });
    // 60 testers: with half of them tested, A, B and the waiting rest all get some (each is
    // empty with a chance of about 1 in 10 million); 59 messages fill more than a page (50).
    const users = Array.from({ length: 60 }, (_, i) => `t${String(i).padStart(2, '0')}`);
    await srv.api('POST', '/v1/contacts/import', { list: 'testers', contacts: users.map((u) => ({ user_id: u, email: `${u}@example.com` })) });
    await srv.api('POST', '/v1/contacts/import', { list: 'press', contacts: [{ user_id: 't00', email: 't00@example.com' }] });
    await srv.api('POST', '/v1/clock/advance', { seconds: 1 });
    const { page } = ab;
    await signIn(page, srv.base);
    await page.getByRole('link', { name: 'Broadcasts', exact: true }).click();
    await page.getByRole('button', { name: 'New broadcast' }).click();
    await page.getByLabel('Name').fill('Subject test');
    await page.getByLabel('Template').selectOption('news-a');
    await page.getByLabel('Audience', { exact: true }).selectOption('list:testers');
    await page.getByTestId('audience-size').getByText(/^60 contacts now;/).waitFor();
    await page.getByRole('button', { name: 'Add an exclusion' }).click();
    await page.getByLabel('Exclusion 1', { exact: true }).selectOption('list:press');
    await page.getByTestId('audience-size').getByText(/^59 contacts now, not counting the excluded;/).waitFor();

    await page.getByLabel('Test before sending').check();
    // The broadcast's own template is variant A: B offers the others.
    const variantB = page.getByLabel('Variant B', { exact: true });
    assert.deepEqual(await variantB.locator('option').allInnerTexts(), ['— choose another template —', 'news-b']);
    await variantB.selectOption('news-b');
    await page.getByLabel('Share tested (%)').fill('50');
    await page.getByTestId('test-share-size').getByText(/^About 30 of the 59 contacts get a variant/).waitFor();
    // A decision time the server refuses is shown at its input, and a second variant left
    // unchosen at its row.
    await page.getByLabel('Decide after').fill('10s');
    await page.getByRole('button', { name: 'Add a variant' }).click();
    await ab.expectingHttpErrors(async () => {
      await page.getByRole('button', { name: 'Create draft' }).click();
      await page.getByTestId('error-test.decide_after').waitFor();
    });
    assert.match(await page.getByTestId('error-test.decide_after').innerText(), /`10s` is not a duration of 1 minute to 30 days/);
    await page.getByRole('button', { name: 'Remove variant C' }).click();
    await page.getByLabel('Decide after').fill('2h');
    await page.getByLabel('Winning metric').selectOption('opens');
    await page.getByRole('button', { name: 'Create draft' }).click();
    await page.getByRole('heading', { name: 'Subject test' }).waitFor();
    const id = decodeURIComponent(new URL(page.url()).pathname.split('/')[2]);
    const savedTest = { variants: ['news-b'], share_percent: 50, decide_after: '2h', metric: 'opens' };
    assert.deepEqual((await srv.api('GET', `/v1/broadcasts/${id}`)).document.test, savedTest);
    assert.match(await page.getByTestId('summary-test').innerText(), /^A: news-a, B: news-b to 50% of the audience; after 2h, the best rate of opens goes to the rest$/);

    // Edited and saved without a change, the test comes back in the form and is kept.
    await page.getByRole('button', { name: 'Edit' }).click();
    assert.equal(await page.getByLabel('Test before sending').isChecked(), true);
    await eventually(async () => (await page.getByLabel('Variant B', { exact: true }).inputValue()) === 'news-b', 'the saved variant B in the form');
    assert.equal(await page.getByLabel('Share tested (%)').inputValue(), '50');
    assert.equal(await page.getByLabel('Decide after').inputValue(), '2h');
    await page.getByRole('button', { name: 'Save draft' }).click();
    await page.getByRole('button', { name: 'Edit' }).waitFor();
    assert.deepEqual((await srv.api('GET', `/v1/broadcasts/${id}`)).document.test, savedTest);

    await page.getByRole('button', { name: 'Send…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Send the broadcast' });
    await dialog.getByTestId('send-audience').waitFor();
    assert.match(await dialog.getByTestId('send-audience').innerText(), /^To the 59 contacts in list “testers” and in none of list “press”, as counted now\./);
    assert.match(await dialog.getByTestId('send-test').innerText(), /^First 50% of them get one of 2 templates \(news-a, news-b\); 2h after the start/);
    await dialog.getByRole('button', { name: 'Send now' }).click();

    // The tested share is sent; the page shows each variant's count as the server does.
    const results = page.getByTestId('test-results');
    await results.waitFor();
    const view = await eventually(async () => {
      const v = await srv.api('GET', `/v1/broadcasts/${id}`);
      // Everyone reached, and each either sent a variant or waiting for the winner.
      const settled = v.processed === 59 && !v.messages.queued && v.messages.sent + v.waiting === 59;
      return settled && v.messages.sent === v.test.variants[0].sent + v.test.variants[1].sent ? v : null;
    }, 'the tested share sent');
    const [sentA, sentB] = view.test.variants.map((v) => v.sent);
    assert.ok(sentA > 0 && sentB > 0 && sentA + sentB < 59, `A ${sentA}, B ${sentB} of 59`);
    await eventually(
      async () => (await results.getByTestId('variant-news-a').getByTestId('variant-sent').innerText()) === String(sentA) && (await results.getByTestId('variant-news-b').getByTestId('variant-sent').innerText()) === String(sentB),
      'the variants sent counts on the page',
    );
    assert.match(await page.getByTestId('test-status').innerText(), /^Decides at /);
    assert.equal(await page.getByTestId('winner-badge').count(), 0);

    // Everyone who got B opens it.
    const { messages: tried } = await srv.api('GET', `/v1/messages?broadcast_id=${encodeURIComponent(id)}&limit=1000`);
    for (const m of tried.filter((m) => m.template === 'news-b')) {
      const token = new RegExp(`${PUBLIC}/t/o/([A-Za-z0-9_.-]+)`).exec(m.html)[1];
      const r = await fetch(`${srv.base}/t/o/${token}`);
      assert.equal(r.status, 200);
    }
    await eventually(async () => (await results.getByTestId('variant-news-b').getByTestId('variant-open-rate').innerText()) === '100.0%', 'B opened by all on the page');
    await page.screenshot({ path: join(SCREENSHOTS, 'broadcast-ab-testing.png') });

    // Past the decision time, B wins and goes to the others.
    await srv.api('POST', '/v1/clock/advance', { seconds: 2 * 3600 });
    await eventually(async () => /^Winner: news-b, chosen /.test(await page.getByTestId('test-status').innerText()), 'the winner shown');
    await results.getByTestId('variant-news-b').getByTestId('winner-badge').waitFor();
    assert.equal(await results.getByTestId('winner-badge').count(), 1);
    // The split is random, so the p-value is too: the page states the server's.
    const decided = (await srv.api('GET', `/v1/broadcasts/${id}`)).test;
    assert.equal(await page.getByTestId('test-standing').innerText(), decided.winner.reason);
    assert.match(decided.winner.reason, /^best rate of opens, (not )?significant at 95%/);
    const [comparison] = decided.comparisons;
    const shown = /^against news-a: z = (-?[\d.]+), p (=|<) ([\d.]+), (significant|not significant) at 95%$/.exec(await page.getByTestId('test-comparisons').innerText());
    assert.ok(shown, 'the comparison in words');
    assert.equal(Number(shown[1]), Number(comparison.z.toFixed(2)));
    if (shown[2] === '<') assert.ok(comparison.p_value < 0.001);
    else assert.equal(shown[3], comparison.p_value.toFixed(3));
    assert.equal(shown[4], comparison.p_value < 0.05 ? 'significant' : 'not significant');
    await eventually(async () => (await page.getByTestId('broadcast-status').getAttribute('data-status')) === 'sent' && (await page.getByTestId('messages-sent').innerText()) === '59', 'sent to all 59');
    await page.screenshot({ path: join(SCREENSHOTS, 'broadcast-ab-winner.png') });

    // Its messages, 50 a page: one row per recipient, the excluded one not among them.
    await page.getByRole('link', { name: /^Its messages/ }).click();
    assert.equal(new URL(page.url()).pathname, `/broadcasts/${encodeURIComponent(id)}/messages`);
    const table = page.getByRole('table', { name: 'Messages of the broadcast' });
    const rowsOfPage = async (n, range) => {
      await eventually(async () => (await table.locator('tbody tr').count()) === n && (await page.getByTestId('messages-range').innerText()) === range, `${n} message rows, ${range}`);
      return table.locator('tbody tr').allInnerTexts();
    };
    const firstPage = await rowsOfPage(50, '1–50');
    assert.equal(await page.getByRole('button', { name: 'Previous page' }).isDisabled(), true);
    await page.getByRole('button', { name: 'Next page' }).click();
    const secondPage = await rowsOfPage(9, '51–59');
    assert.equal(await page.getByRole('button', { name: 'Next page' }).isDisabled(), true);
    await page.screenshot({ path: join(SCREENSHOTS, 'broadcast-messages.png') });
    await page.getByRole('button', { name: 'Previous page' }).click();
    assert.deepEqual(await rowsOfPage(50, '1–50'), firstPage);
    const rows = [...firstPage, ...secondPage];
    const recipients = rows.map((r) => r.split('\t')[0]).sort();
    assert.deepEqual(recipients, users.slice(1).map((u) => `${u}@example.com`));
    const templates = rows.map((r) => r.split('\t')[1]);
    assert.equal(templates.filter((t) => t === 'news-a').length, sentA, 'only the tested share got A');
    assert.equal(templates.filter((t) => t === 'news-b').length, 59 - sentA, 'B went to the others');
    for (const r of rows) assert.equal(r.split('\t')[2], 'sent');
    assert.deepEqual(ab.problems, []);
  } finally {
    await ab.close();
    await srv.stop();
  }
});
