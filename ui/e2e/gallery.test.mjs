// A journey from the template gallery, and publishing a second version: the summary of what
// changes for contacts in flight.
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

test('create from the gallery, publish, change and publish again with a summary', async () => {
  const { page } = b;
  await signIn(page, server.base);
  await page.getByRole('button', { name: /^Welcome series On sign-up/ }).click();
  await page.getByRole('dialog', { name: 'New journey' }).getByRole('button', { name: 'Create' }).click();
  // The template's nodes, laid out (the example has no positions).
  for (const id of ['signed-up', 'confirmation', 'wait-2-days', 'content', 'wait-until-week-1', 'feedback']) {
    await page.getByTestId(`node-${id}`).waitFor();
  }
  await page.getByTestId('validity').filter({ hasText: 'Valid' }).waitFor({ timeout: 10_000 });
  await page.getByRole('button', { name: 'Publish…' }).click();
  await page.getByRole('button', { name: 'Publish now' }).click();
  await page.locator('.toolbar .badge', { hasText: 'live' }).waitFor();

  // Ann signs up and waits two days.
  await server.api('POST', '/v1/identify', { userId: 'ann', traits: { email: 'ann@example.com' } }, 'write');
  await server.api('POST', '/v1/track', { userId: 'ann', event: 'Signed Up' }, 'write');
  await server.api('POST', '/v1/clock/advance', { seconds: 60 });
  const waiting = page.getByTestId('stat-wait-2-days-waiting');
  await waiting.and(page.locator('[data-value="1"]')).waitFor({ timeout: 15_000 });

  // Wait three days instead of two, and drop the feedback email.
  await page.getByTestId('node-wait-2-days').click();
  await page.getByTestId('node-panel').locator('[data-field="duration"] input').fill('3d');
  await page.getByTestId('node-feedback').click();
  await page.keyboard.press('Delete');
  await page.getByTestId('node-feedback').waitFor({ state: 'detached' });
  await page.getByRole('button', { name: 'Save draft' }).click();
  await page.getByText('saved', { exact: true }).waitFor();

  await page.getByRole('button', { name: 'Publish…' }).click();
  const summary = page.getByTestId('publish-summary');
  await summary.getByText('Nodes removed: feedback').waitFor();
  await summary.getByText('Nodes changed: wait-2-days').waitFor();
  await summary.getByText('1 contact(s) wait now at changed nodes').waitFor();
  await page.screenshot({ path: join(SCREENSHOTS, 'publish-summary.png') });
  await page.getByRole('button', { name: 'Publish now' }).click();
  await page.getByText('version 2 live').waitFor();
  const row = await server.api('GET', '/v1/journeys/welcome-series');
  assert.equal(row.live_version, 2);
  assert.equal(row.draft.nodes.find((n) => n.id === 'wait-2-days').duration, '3d');
  assert.deepEqual(b.problems, []);
});
