// Contacts in the web app, against a real server: browsed without a search, found by a part of
// a name, narrowed by a trait and by consent, sorted by a column's header, the filter kept in the
// address across a reload; on a contact's page, consent changed with a reason, which the
// timeline (newest first) shows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openBrowser, signIn, startServer, SCREENSHOTS } from './harness.mjs';

let server;
let b;

before(async () => {
  server = await startServer();
  b = await openBrowser();
  // One import at a time, a minute apart: each contact has a creation time of its own.
  for (const [user, first, last, plan] of [
    ['kim', 'Kim', 'Lee', 'pro'],
    ['ann', 'Ann', 'Berg', 'free'],
    ['zoe', 'Zoe', 'Kimura', 'pro'],
  ]) {
    await server.api('POST', '/v1/contacts/import', { contacts: [{ user_id: user, email: `${user}@example.com`, traits: { first_name: first, last_name: last, plan } }] });
    await server.api('POST', '/v1/clock/advance', { seconds: 60 });
  }
  const [zoe] = (await server.api('GET', '/v1/contacts?user_id=zoe')).contacts;
  await server.api('PUT', `/v1/contacts/${zoe.id}/subscriptions/email/news`, { status: 'unsubscribed' });
  await server.api('POST', '/v1/clock/advance', { seconds: 1 });
  await signIn(b.page, server.base);
});

after(async () => {
  await b?.close();
  await server?.stop();
});

/** The user ids the contacts table shows, in its order. */
async function shown(page) {
  const table = page.locator('table.table');
  await table.waitFor();
  return table.locator('tbody tr td:nth-child(3)').allInnerTexts();
}

/** Waits until the table shows `expected` (it reloads after each change). */
async function showing(page, expected, what) {
  const deadline = Date.now() + 10_000;
  let last;
  while (Date.now() < deadline) {
    last = await shown(page);
    if (JSON.stringify(last) === JSON.stringify(expected)) return;
    await page.waitForTimeout(100);
  }
  assert.fail(`${what}: the table shows ${JSON.stringify(last)}, not ${JSON.stringify(expected)}`);
}

test('contacts are browsed, found by name, trait and consent, sorted, and the address keeps it', async () => {
  const { page } = b;
  await page.getByRole('link', { name: 'Contacts', exact: true }).click();
  await showing(page, ['kim', 'ann', 'zoe'], 'every contact, without a search');

  // A part of a name: Kim's first name and Zoe Kimura's last.
  await page.getByLabel('Search contacts').fill('kim');
  await page.getByLabel('Search contacts').press('Enter');
  await showing(page, ['kim', 'zoe'], 'a part of a name');
  await page.getByRole('button', { name: 'Show all' }).click();
  await showing(page, ['kim', 'ann', 'zoe'], 'all again');

  // Sorted by a header: email, then the other way; created, newest first.
  await page.getByRole('button', { name: 'Email' }).click();
  await showing(page, ['ann', 'kim', 'zoe'], 'by email');
  assert.equal(await page.locator('th[aria-sort="ascending"]').innerText(), 'Email ▲');
  await page.getByRole('button', { name: 'Email' }).click();
  await showing(page, ['zoe', 'kim', 'ann'], 'by email, descending');
  await page.getByRole('button', { name: 'Created' }).click();
  await showing(page, ['zoe', 'ann', 'kim'], 'newest first');

  // A trait, then consent as well.
  await page.getByLabel('Trait').fill('plan:pro');
  await page.getByLabel('Trait').press('Enter');
  await showing(page, ['zoe', 'kim'], 'plan pro, newest first');
  await page.getByLabel('Consent topic').fill('news');
  await page.getByLabel('Consent status').selectOption('unsubscribed');
  await showing(page, ['zoe'], 'unsubscribed from news');
  await page.getByLabel('Consent status').selectOption('none');
  await showing(page, ['kim'], 'no record for news');

  // The address keeps the filter and the order: a reload shows the same.
  const address = new URL(page.url());
  assert.equal(address.pathname, '/contacts');
  assert.deepEqual(Object.fromEntries(address.searchParams), { trait: 'plan:pro', consent: 'email:news:none', sort: '-created_at' });
  await page.reload();
  await showing(page, ['kim'], 'after a reload');
  assert.equal(await page.getByLabel('Trait').inputValue(), 'plan:pro');
  assert.equal(await page.getByLabel('Consent status').inputValue(), 'none');
  await page.screenshot({ path: join(SCREENSHOTS, 'contacts-filtered.png') });
  assert.deepEqual(b.problems, []);
});

test("a contact's consent is changed with a reason, which the timeline shows first", async () => {
  const { page } = b;
  const [kim] = (await server.api('GET', '/v1/contacts?user_id=kim')).contacts;
  await page.goto(`${server.base}/contacts/${kim.id}`);
  await page.getByText('No subscription records: counts as subscribed.').waitFor();

  const form = page.getByRole('form', { name: 'Change consent' });
  const submit = form.getByRole('button', { name: 'Change consent' });
  await form.getByLabel('Topic').fill('news');
  await form.getByLabel('Status').selectOption('unsubscribed');
  assert.equal(await submit.isDisabled(), true, 'a reason is required');
  await form.getByLabel('Reason').fill('asked on the phone');
  await submit.click();
  await page.getByText('Saved: email · news is unsubscribed.').waitFor();
  await page.getByTestId('subscriptions').getByText('email · news').waitFor();

  // The engine records the change's event; the timeline shows it first, with the reason.
  await server.api('POST', '/v1/clock/advance', { seconds: 1 });
  await page.getByRole('button', { name: 'Refresh' }).click();
  const first = page.getByTestId('timeline').locator('li').first();
  await first.getByText(/Unsubscribed — .*reason: asked on the phone/).waitFor();
  const [subscription] = (await server.api('GET', `/v1/contacts/${kim.id}/subscriptions`)).subscriptions;
  assert.equal(subscription.status, 'unsubscribed');

  // "change" on a subscription starts the form from it, the other way.
  await page.getByTestId('subscriptions').getByRole('button', { name: 'change' }).click();
  assert.equal(await form.getByLabel('Status').inputValue(), 'subscribed');
  assert.equal(await form.getByLabel('Topic').inputValue(), 'news');
  // The same status again changes nothing, and says so.
  await form.getByLabel('Status').selectOption('unsubscribed');
  await form.getByLabel('Reason').fill('asked again');
  await submit.click();
  await page.getByText('Nothing changed: email · news was already unsubscribed.').waitFor();
  await page.screenshot({ path: join(SCREENSHOTS, 'contact-consent.png') });
  assert.deepEqual(b.problems, []);
});
