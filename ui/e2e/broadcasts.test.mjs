// Broadcasts in the web app, against a real server: a draft written with mistakes shows the
// server's errors at their fields, fixed it is saved, test-sent, sent after a confirmation that
// names the audience, and its progress reaches `sent` with one message for each contact of the
// list but the excluded one; a broadcast at 1 message a second (on the system clock) is paused,
// resumed and cancelled with its buttons, and stops there.
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
  assert.match(await page.getByTestId('audience-size').innerText(), /^4 members now/);
  await page.getByRole('button', { name: 'Add an exclusion' }).click();
  await page.getByLabel('Exclusion 1', { exact: true }).selectOption('list:press');
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
  });
  assert.deepEqual(await page.getByTestId('overrides').locator('li').allInnerTexts(), ['Waits for quiet hours and blocked dates to end', 'Respects frequency caps']);
  // A draft can be edited, deleted, sent or cancelled, not paused.
  for (const name of ['Edit', 'Send…', 'Delete', 'Cancel broadcast']) assert.equal(await page.getByRole('button', { name, exact: true }).count(), 1, name);
  assert.equal(await page.getByRole('button', { name: 'Pause' }).count(), 0);

  // Edited, the form comes back as saved; the override is recorded.
  await page.getByRole('button', { name: 'Edit' }).click();
  assert.equal(await page.getByLabel('Name').inputValue(), 'November news');
  assert.equal(await page.getByLabel('Exclusion 1', { exact: true }).inputValue(), 'list:press');
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
  assert.match(await dialog.getByTestId('send-audience').innerText(), /^To the 4 members of list “readers” now, less those in list “press”\./);
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
