// Segments and lists in the web app, against a real server: a segment typed with an error shows
// the error at its line and column, fixed it shows who matches, saved it lists its members and
// charts them per day as the clock moves on, and a journey using it keeps it from being deleted; a list gets a CSV file (with bad rows) with its
// progress and the rejected rows, then a contact found by search, and loses one; contacts checked
// on the contacts page go into a list at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openBrowser, signIn, startServer, SCREENSHOTS } from './harness.mjs';

let server;
let b;

before(async () => {
  server = await startServer();
  b = await openBrowser();
  for (const [user, plan, orders] of [
    ['ann', 'pro', 3],
    ['bob', 'free', 1],
    ['cy', 'pro', 0],
  ]) {
    await server.api('POST', '/v1/identify', { userId: user, traits: { email: `${user}@example.com`, plan } }, 'write');
    for (let i = 0; i < orders; i++) await server.api('POST', '/v1/track', { userId: user, event: 'Order Completed' }, 'write');
  }
  // Returns once the engine has done all due work: the contacts and their events are in.
  await server.api('POST', '/v1/clock/advance', { seconds: 1 });
  await signIn(b.page, server.base);
});

after(async () => {
  await b?.close();
  await server?.stop();
});

/** Waits until `fn` holds (polling), else fails with `what`. */
async function eventually(fn, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`${what} did not happen in ${ms} ms (last: ${JSON.stringify(last)})`);
}

test('a segment shows its errors where they are, then who matches, and a journey keeps it', async () => {
  const { page } = b;
  await page.getByRole('link', { name: 'Segments', exact: true }).click();
  await page.getByRole('heading', { name: 'Segments' }).waitFor();
  await page.getByRole('button', { name: 'New segment' }).click();
  await page.getByLabel('Name').fill('Repeat buyers');
  assert.equal(await page.getByLabel('Id', { exact: true }).inputValue(), 'repeat-buyers');

  const condition = page.getByLabel('Condition');
  const errors = page.getByTestId('condition-errors');
  await b.expectingHttpErrors(async () => {
    await condition.fill('did "Order Completed" in last soon');
    await errors.waitFor();
  });
  const shown = await errors.innerText();
  assert.match(shown, /line 1, column 31: expected/);
  // The caret stands under `soon`.
  const caret = await errors.locator('pre.caret').innerText();
  const [source, marker] = caret.split('\n');
  assert.equal(source, 'did "Order Completed" in last soon');
  assert.equal(marker.indexOf('^'), source.indexOf('soon'));
  assert.ok(await page.getByRole('button', { name: 'Create segment' }).isDisabled());
  await page.screenshot({ path: join(SCREENSHOTS, 'segment-error.png') });

  // A second line: the error says line 2.
  await b.expectingHttpErrors(async () => {
    await condition.fill('plan = "pro"\nand did "Order Completed" at least two times');
    await eventually(async () => /line 2, column/.test(await errors.innerText().catch(() => '')), 'an error on line 2');
  });

  await condition.fill('did "Order Completed" at least 2 times in last 90d');
  const count = page.getByTestId('preview-count');
  await eventually(async () => (await count.getAttribute('data-value').catch(() => null)) === '1', 'the preview count of 1');
  assert.equal(await errors.count(), 0);
  await page.getByRole('table', { name: 'Sample members' }).getByText('ann', { exact: true }).waitFor();
  // Widened while typing: the count follows.
  await condition.fill('did "Order Completed"');
  await eventually(async () => (await count.getAttribute('data-value').catch(() => null)) === '2', 'the preview count of 2');
  await condition.fill('did "Order Completed" at least 2 times in last 90d');
  await eventually(async () => (await count.getAttribute('data-value').catch(() => null)) === '1', 'the preview count of 1 again');
  await page.screenshot({ path: join(SCREENSHOTS, 'segment-preview.png') });

  await page.getByRole('button', { name: 'Create segment' }).click();
  await page.getByRole('heading', { name: /Repeat buyers/ }).waitFor();
  const members = page.getByRole('table', { name: 'Segment members' });
  await members.getByText('ann', { exact: true }).waitFor();
  assert.equal(await members.getByText('bob', { exact: true }).count(), 0);
  assert.match(await page.getByText('No journey\'s trigger uses this segment.').innerText(), /No journey/);

  // Members over time: a point per day of the last 30, ann a member since today.
  const chart = page.getByTestId('members-chart');
  const perDay = async () => ((await chart.getAttribute('data-members').catch(() => null)) ?? '').split(',').map(Number);
  await chart.waitFor();
  assert.equal(await chart.getAttribute('data-days'), '30');
  assert.deepEqual((await perDay()).slice(-2), [0, 1]);
  // Two days on, cy orders twice and enters: the chart follows the server's clock.
  await server.api('POST', '/v1/clock/advance', { seconds: 2 * 86_400 });
  for (let i = 0; i < 2; i++) await server.api('POST', '/v1/track', { userId: 'cy', event: 'Order Completed' }, 'write');
  await server.api('POST', '/v1/clock/advance', { seconds: 0 });
  await page.reload();
  await eventually(async () => (await perDay()).slice(-3).join() === '1,1,2', 'cy in the chart, two days after ann');
  await page.getByLabel('Range').selectOption({ label: 'Last 7 days' });
  await eventually(async () => (await chart.getAttribute('data-days').catch(() => null)) === '7', 'a week of days');
  assert.deepEqual(await perDay(), [0, 0, 0, 0, 1, 1, 2]);
  assert.match(await page.getByTestId('members-summary').innerText(), /Last 7 days: 2 entered, 0 left/);
  assert.match(await chart.locator('circle title').last().textContent(), /: 2 members \(\+1, −0\)$/);
  await page.screenshot({ path: join(SCREENSHOTS, 'segment-history.png') });

  // A journey starts on it: the page says so, and the server refuses to delete it.
  await server.api('PUT', '/v1/journeys/vip-thanks', {
    id: 'vip-thanks',
    name: 'Thank repeat buyers',
    nodes: [{ id: 'start', type: 'trigger', segment: { id: 'repeat-buyers' } }],
  });
  await server.api('POST', '/v1/journeys/vip-thanks/publish');
  await page.reload();
  const usedBy = page.getByTestId('used-by');
  await usedBy.getByRole('link', { name: 'Thank repeat buyers' }).waitFor();
  assert.match(await usedBy.innerText(), /live/);
  await b.expectingHttpErrors(async () => {
    await page.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('alert').filter({ hasText: 'segment_in_use' }).waitFor();
  });
  assert.match(await page.getByRole('alert').filter({ hasText: 'segment_in_use' }).innerText(), /vip-thanks/);

  // The list of segments shows the count and the journey.
  await page.getByRole('link', { name: '← Segments' }).click();
  const table = page.getByRole('table', { name: 'Segments' });
  await table.getByRole('link', { name: 'Repeat buyers', exact: true }).waitFor();
  assert.equal(await page.getByTestId('members-repeat-buyers').innerText(), '2');
  await table.getByRole('link', { name: 'Thank repeat buyers' }).waitFor();

  // Archived, the journey no longer keeps it: deleted after the confirmation.
  await server.api('POST', '/v1/journeys/vip-thanks/archive');
  await table.getByRole('link', { name: 'Repeat buyers', exact: true }).click();
  await page.getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('heading', { name: 'Segments' }).waitFor();
  const { segments } = await server.api('GET', '/v1/segments');
  assert.deepEqual(segments, []);
  assert.deepEqual(b.problems, []);
});

test('a list gets a CSV file with its progress and rejected rows, and contacts found by search', async () => {
  const { page } = b;
  await page.getByRole('link', { name: 'Lists', exact: true }).click();
  await page.getByRole('heading', { name: 'Lists' }).waitFor();
  await page.getByLabel('New list name').fill('newsletter');
  await page.getByRole('button', { name: 'Create list' }).click();
  await page.getByRole('heading', { name: /newsletter/ }).waitFor();

  // 600 rows (three requests), one with a bad email, one repeating an earlier contact.
  const lines = ['email;first_name;plan'];
  for (let i = 1; i <= 600; i++) lines.push(`reader${i}@example.com;Reader ${i};free`);
  lines[10] = 'not-an-email;Broken;free';
  lines.push('reader1@example.com;Again;free');
  await b.expectingHttpErrors(async () => {
    await page.getByLabel('CSV file').setInputFiles({ name: 'readers.csv', mimeType: 'text/csv', buffer: Buffer.from(lines.join('\n')) });
    await page.getByTestId('import-summary').waitFor({ timeout: 30_000 });
  });
  assert.equal(await page.getByTestId('import-progress').innerText(), 'readers.csv: 601 of 601 rows read');
  const progress = page.getByLabel('Import progress');
  assert.equal(await progress.getAttribute('value'), await progress.getAttribute('max'));
  assert.equal(await page.getByTestId('import-summary').innerText(), 'Imported 599 contacts from 599 rows, rejected 2 rows.');
  const rejected = await page.getByRole('table', { name: 'Rejected rows' }).locator('tbody tr').allInnerTexts();
  assert.equal(rejected.length, 2, rejected.join('\n'));
  assert.match(rejected[0], /^11\temail\t/);
  assert.match(rejected[1], /^602\temail\temail `reader1@example.com` .*line 2/);
  await page.screenshot({ path: join(SCREENSHOTS, 'list-import.png') });

  // The members, a page at a time.
  const members = page.getByRole('table', { name: 'List members' });
  await members.getByText('reader1@example.com', { exact: true }).first().waitFor();
  await eventually(async () => /599 members/.test(await page.getByTestId('list-count').innerText()), 'the count of 599');
  await page.getByRole('button', { name: 'Next →' }).click();
  await page.getByText('Page 2').waitFor();
  // Page 1 ended with reader 26 (reader 10 was the bad row).
  await members.getByText('reader27@example.com', { exact: true }).first().waitFor();
  assert.equal(await members.getByText('reader26@example.com', { exact: true }).count(), 0);
  await page.getByRole('button', { name: '← Previous' }).click();
  await page.getByText('Page 1').waitFor();

  // A contact the search finds, added; then removed.
  await page.getByLabel('Find contacts to add').fill('bob@exa');
  await page.getByRole('button', { name: 'Find' }).click();
  await page.getByRole('button', { name: 'Add bob' }).click();
  await page.getByText('added', { exact: true }).waitFor();
  await eventually(async () => /600 members/.test(await page.getByTestId('list-count').innerText()), 'the count of 600');
  const inList = async () => (await server.api('GET', '/v1/contacts?list=newsletter&user_id=bob')).contacts.length;
  assert.equal(await inList(), 1);
  // Members are listed by contact id: bob came before the readers.
  await members.getByText('bob', { exact: true }).waitFor();
  await page.getByRole('button', { name: 'Remove bob' }).click();
  await eventually(async () => (await members.getByText('bob', { exact: true }).count()) === 0, 'bob gone from the table');
  assert.equal(await inList(), 0);

  // The imported contacts have their traits (the identify calls were applied).
  const { contacts } = await server.api('GET', '/v1/contacts?user_id=reader5@example.com');
  await eventually(async () => (await server.api('GET', '/v1/contacts?user_id=reader5@example.com')).contacts[0]?.traits?.first_name === 'Reader 5', 'the traits of reader5');
  assert.equal(contacts.length, 1);
  assert.deepEqual(b.problems, []);
});

test('contacts checked on the contacts page go into a list at once', async () => {
  const { page } = b;
  await server.api('POST', '/v1/lists', { name: 'pro-plan' });
  await page.getByRole('link', { name: 'Contacts', exact: true }).click();
  await page.getByLabel('Search contacts').fill('@example.com');
  await page.getByLabel('Search contacts').press('Enter');
  const table = page.getByRole('table', { name: 'Contacts found' });
  await table.getByText('ann', { exact: true }).waitFor();

  // All on the page, then one taken out again.
  await page.getByLabel('Select all on this page').check();
  const shown = await table.locator('tbody tr').count();
  assert.equal(await page.getByTestId('bulk-add').getByText(`${shown} selected`).count(), 1);
  await page.getByLabel('Select all on this page').uncheck();
  await page.getByLabel('Select ann').check();
  await page.getByLabel('Select cy').check();
  await page.getByLabel('Select bob').check();
  await page.getByLabel('Select bob').uncheck();
  await page.getByLabel('Add to list').selectOption('pro-plan');
  await page.getByRole('button', { name: 'Add to list' }).click();
  await page.getByText('Added 2 contacts to pro-plan.').waitFor();
  assert.equal(await page.getByLabel('Select ann').isChecked(), false);
  const { contacts } = await server.api('GET', '/v1/lists/pro-plan/members');
  assert.deepEqual(
    contacts.map((c) => c.user_id),
    ['ann', 'cy'],
  );
  assert.deepEqual(b.problems, []);
});
