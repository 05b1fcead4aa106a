// Segments in the web app, against a real server: a segment typed with an error shows the error
// at its line and column, fixed it shows who matches, saved it lists its members, and a journey
// using it keeps it from being deleted.
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
  assert.equal(await page.getByTestId('members-repeat-buyers').innerText(), '1');
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
