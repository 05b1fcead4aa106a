// The end-to-end scenario: sign in; build the abandoned-cart journey from an empty
// canvas by dragging and connecting nodes and filling their forms; publish it; send events
// through the ingestion API; advance the clock; see the right counts on the nodes; open the
// contact's timeline. Screenshots go to e2e/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openBrowser, signIn, startServer, SCREENSHOTS, ADMIN_TOKEN } from './harness.mjs';

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

const HOUR = 3600;

async function box(locator) {
  await locator.waitFor();
  const bb = await locator.boundingBox();
  assert.ok(bb, 'element has a box');
  return bb;
}

/** Drags a palette entry onto the canvas at (x, y) relative to the canvas. */
async function dropNode(page, type, x, y) {
  const canvas = page.getByTestId('canvas');
  await page.getByTestId(`palette-${type}`).dragTo(canvas, { targetPosition: { x, y } });
  await page.getByTestId('node-panel').waitFor();
}

/** Connects an output handle of one node to the input of another, with the mouse. */
async function connect(page, from, output, to) {
  const a = await box(page.getByTestId(`out-${from}-${output}`));
  const z = await box(page.getByTestId(`in-${to}`));
  await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2);
  await page.mouse.down();
  await page.mouse.move((a.x + z.x) / 2, (a.y + z.y) / 2, { steps: 5 });
  await page.mouse.move(z.x + z.width / 2, z.y + z.height / 2, { steps: 5 });
  await page.mouse.up();
  const edge = page.locator(`.react-flow__edge[data-id="${from}:${output}->${to}"]`);
  await edge.waitFor({ state: 'attached' });
}

async function renameSelected(page, id) {
  const input = page.getByLabel('Node id');
  await input.fill(id);
  await input.press('Enter');
  await page.getByTestId(`node-${id}`).waitFor();
}

/** The input of a node setting, by its path in the settings (`event`, `inactivity.event`). */
async function panelField(page, path) {
  return page.getByTestId('node-panel').locator(`[data-field="${path}"]`).locator('input, textarea, select').first();
}

async function statValue(page, node, name) {
  return page.getByTestId(`stat-${node}-${name}`).getAttribute('data-value');
}

async function expectStat(page, node, name, value) {
  const loc = page.getByTestId(`stat-${node}-${name}`);
  await loc.waitFor();
  const deadline = Date.now() + 15_000;
  let last;
  while (Date.now() < deadline) {
    last = await loc.getAttribute('data-value');
    if (last === String(value)) return;
    await page.waitForTimeout(250);
  }
  assert.equal(last, String(value), `${node} ${name}`);
}

test('sign-in refuses a wrong token and shows the server message', async () => {
  const { page } = b;
  await page.goto(server.base + '/');
  await page.getByLabel('Admin token').fill('not-the-token');
  await b.expectingHttpErrors(async () => {
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'unauthorized' }).waitFor();
  });
  const text = await page.getByRole('alert').textContent();
  assert.match(text, /the admin token is not valid \(unauthorized\)/);
});

test('build, publish and watch the abandoned-cart journey', async () => {
  const { page } = b;
  // The journey's templates, as the example ships them (through the gallery endpoint).
  const gallery = await server.api('GET', '/v1/journey-templates');
  const example = gallery.templates.find((t) => t.id === 'abandoned-cart');
  assert.ok(example, 'the gallery lists abandoned-cart');
  for (const t of example.document.templates) await server.api('PUT', `/v1/templates/${t.id}`, t);

  await signIn(page, server.base);
  // The session is an HTTP-only cookie: scripts cannot read it.
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'waymark_session');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict', JSON.stringify(cookies));
  assert.equal(await page.evaluate(() => document.cookie), '');

  // A new, empty journey.
  await page.getByRole('button', { name: 'New journey' }).click();
  await page.getByLabel('Name').fill('Abandoned cart');
  await page.getByLabel('Id (used in URLs)').fill('abandoned-cart');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByTestId('canvas').waitFor();
  await page.getByText('Drag a node kind here to start').waitFor();

  // Journey settings: entry key and goal, from the schema-generated form.
  const journeyPanel = page.getByTestId('journey-panel');
  await journeyPanel.locator('[data-field="entry.key"] input').fill('cart_id');
  await journeyPanel.locator('[data-field="goal.event"] input').fill('Order Completed');

  // Zoom out so that six nodes fit where we drop them.
  for (let i = 0; i < 3; i++) await page.getByRole('button', { name: 'Zoom Out' }).click();

  await dropNode(page, 'trigger', 150, 60);
  await renameSelected(page, 'product-added');
  await (await panelField(page, 'event')).fill('Product Added');
  await (await panelField(page, 'filter')).fill('{"cart_id": {"exists": true}}');

  await dropNode(page, 'wait_for_event', 150, 200);
  await renameSelected(page, 'wait-for-order');
  await (await panelField(page, 'event')).fill('Order Completed');
  await (await panelField(page, 'timeout')).fill('24h');
  await connect(page, 'product-added', 'next', 'wait-for-order');

  await dropNode(page, 'send_email', 150, 340);
  await renameSelected(page, 'cart-email');
  await (await panelField(page, 'template')).fill('cart-reminder-email');
  await connect(page, 'wait-for-order', 'timeout', 'cart-email');

  await dropNode(page, 'exit', 450, 340);
  await renameSelected(page, 'ordered');
  await connect(page, 'wait-for-order', 'event', 'ordered');

  await dropNode(page, 'wait_for_event', 150, 480);
  await renameSelected(page, 'wait-a-day');
  await (await panelField(page, 'event')).fill('Order Completed');
  await (await panelField(page, 'timeout')).fill('1d');
  await connect(page, 'cart-email', 'next', 'wait-a-day');
  await connect(page, 'wait-a-day', 'event', 'ordered');

  await dropNode(page, 'send_sms', 150, 620);
  await renameSelected(page, 'cart-sms');
  await (await panelField(page, 'template')).fill('cart-reminder-sms');
  await connect(page, 'wait-a-day', 'timeout', 'cart-sms');

  // Deselect: the journey panel says whether the server finds the draft valid.
  await page.locator('.react-flow__pane').click({ position: { x: 700, y: 20 } });
  await page.getByTestId('validity').filter({ hasText: 'Valid: ready to publish.' }).waitFor({ timeout: 10_000 });
  await page.getByRole('button', { name: 'Auto-layout' }).click();

  await page.getByRole('button', { name: 'Publish…' }).click();
  await page.getByTestId('publish-summary').filter({ hasText: 'first version' }).waitFor();
  await page.getByRole('button', { name: 'Publish now' }).click();
  await page.locator('.toolbar .badge', { hasText: 'live' }).waitFor();

  // What was published is the abandoned-cart graph.
  const row = await server.api('GET', '/v1/journeys/abandoned-cart');
  const edges = row.draft.edges.map((e) => `${e.from}:${e.output ?? 'next'}->${e.to}`).sort();
  const expected = example.document.edges.map((e) => `${e.from}:${e.output ?? 'next'}->${e.to}`).sort();
  assert.deepEqual(edges, expected);
  assert.equal(row.draft.entry.key, 'cart_id');
  assert.equal(row.live_version, 1);

  // Ann leaves her cart; Bob orders within the day.
  await server.api('POST', '/v1/identify', { userId: 'ann', traits: { email: 'ann@example.com', phone: '+14155552671', first_name: 'Ann' } }, 'write');
  await server.api('POST', '/v1/track', { userId: 'ann', event: 'Product Added', properties: { cart_id: 'c1', products: [{ name: 'Mug', quantity: 2 }] } }, 'write');
  await server.api('POST', '/v1/identify', { userId: 'bob', traits: { email: 'bob@example.com' } }, 'write');
  await server.api('POST', '/v1/track', { userId: 'bob', event: 'Product Added', properties: { cart_id: 'c2' } }, 'write');
  await server.api('POST', '/v1/clock/advance', { seconds: 2 * HOUR });
  await server.api('POST', '/v1/track', { userId: 'bob', event: 'Order Completed', properties: { cart_id: 'c2' } }, 'write');
  await server.api('POST', '/v1/clock/advance', { seconds: 23 * HOUR });

  // The canvas refreshes by itself.
  await expectStat(page, 'product-added', 'entered', 2);
  await expectStat(page, 'product-added', 'converted', 1);
  await expectStat(page, 'wait-for-order', 'entered', 2);
  // The goal ends Bob's enrollment at once: it does not go on to `ordered`.
  await expectStat(page, 'ordered', 'entered', 0);
  await expectStat(page, 'cart-email', 'entered', 1);
  await expectStat(page, 'cart-email', 'sent', 1);
  await expectStat(page, 'cart-email', 'opened', 0);
  await expectStat(page, 'wait-a-day', 'waiting', 1);
  await expectStat(page, 'cart-sms', 'entered', 0);

  // A day later, the SMS.
  await server.api('POST', '/v1/clock/advance', { seconds: 24 * HOUR });
  await expectStat(page, 'cart-sms', 'sent', 1);
  await expectStat(page, 'wait-a-day', 'waiting', 0);
  await page.screenshot({ path: join(SCREENSHOTS, 'canvas.png') });

  // Ann's page and timeline: the contacts are listed without a search; a part of her address,
  // in another case, finds her.
  await page.getByRole('link', { name: 'Contacts', exact: true }).click();
  await page.getByRole('table', { name: 'All contacts' }).getByText('ann@example.com').waitFor();
  await page.getByLabel('Search contacts').fill('ANN@exa');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('table', { name: 'Contacts found' }).getByText('ann@example.com').waitFor();
  await page.getByRole('link', { name: 'ann', exact: true }).click();
  await page.getByRole('heading', { name: /ann/ }).waitFor();
  const timeline = page.getByTestId('timeline');
  await timeline.getByText('Product Added', { exact: false }).first().waitFor();
  // Newest first: the SMS of the second day above the event that started it all; an event's
  // properties in words, its JSON on demand.
  const entries = await timeline.locator('li').allTextContents();
  const sms = entries.findIndex((t) => /sms · sent/.test(t));
  const added = entries.findIndex((t) => /Product Added/.test(t));
  assert.ok(sms >= 0 && added > sms, `not newest first: ${JSON.stringify(entries)}`);
  await timeline.getByText(/Product Added — cart_id: /).first().waitFor();
  await timeline.locator('li', { hasText: 'Product Added' }).first().getByRole('button', { name: 'JSON' }).click();
  await timeline.locator('pre', { hasText: '"cart_id"' }).first().waitFor();
  await timeline.getByText(/email · sent · template cart-reminder-email/).waitFor();
  await timeline.getByText(/sms · sent · template cart-reminder-sms/).waitFor();
  await timeline.getByText(/abandoned-cart › cart-email: entered/).waitFor();
  await page.getByTestId('traits').getByText('Ann', { exact: true }).waitFor();
  await page.getByTestId('enrollments').getByText('abandoned-cart').waitFor();
  await page.screenshot({ path: join(SCREENSHOTS, 'contact.png') });
  // The reminder as Ann got it: her cart.
  await timeline.locator('li', { hasText: 'template cart-reminder-email' }).getByRole('button', { name: 'show' }).click();
  await page.frameLocator('iframe[title^="Message"]').getByText('Mug × 2').waitFor();
  await page.getByRole('button', { name: 'hide', exact: true }).scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(SCREENSHOTS, 'contact-message.png') });

  // Search by phone finds her too.
  await page.getByRole('link', { name: 'Contacts', exact: true }).click();
  await page.getByLabel('Search contacts').fill('+1 415 555 2671');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('table', { name: 'Contacts found' }).getByText('ann@example.com').waitFor();

  // Narrowed to the members of a list: Ann, not Bob.
  const annId = (await server.api('GET', '/v1/contacts?user_id=ann')).contacts[0].id;
  await server.api('POST', '/v1/lists', { name: 'press' });
  await server.api('POST', '/v1/lists/press/members', { contact_ids: [annId] });
  await page.getByRole('link', { name: 'Journeys', exact: true }).click();
  await page.getByRole('link', { name: 'Contacts', exact: true }).click();
  await page.getByRole('table', { name: 'All contacts' }).getByText('bob@example.com').waitFor();
  await page.getByLabel('In list').selectOption('press');
  const inList = page.getByRole('table', { name: 'Contacts found' });
  await inList.getByText('ann@example.com').waitFor();
  assert.equal(await inList.getByText('bob@example.com').count(), 0);

  assert.deepEqual(b.problems, []);
});

test('pause and resume from the builder; the list shows the numbers', async () => {
  const { page } = b;
  await page.goto(server.base + '/journeys/abandoned-cart');
  await page.getByRole('button', { name: 'Pause' }).click();
  await page.locator('.toolbar .badge', { hasText: 'paused' }).waitFor();
  await page.getByRole('button', { name: 'Resume' }).click();
  await page.locator('.toolbar .badge', { hasText: 'live' }).waitFor();
  await page.getByRole('link', { name: '← Journeys' }).click();
  const row = page.getByRole('table', { name: 'Journeys' }).getByRole('row').filter({ hasText: 'Abandoned cart' });
  await row.waitFor();
  const cells = await row.getByRole('cell').allTextContents();
  // name, status, version, entered, active, converted
  assert.equal(cells[1], 'live');
  assert.equal(cells[2], '1');
  assert.equal(cells[3], '2');
  assert.equal(cells[4], '0');
  assert.equal(cells[5], '1');
  assert.deepEqual(b.problems, []);
});

test('undo, redo, select all and delete on the canvas; errors shown on nodes', async () => {
  const { page } = b;
  await page.goto(server.base + '/journeys');
  await page.getByRole('button', { name: 'New journey' }).click();
  await page.getByLabel('Name').fill('Scratch');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByTestId('canvas').waitFor();
  await page.getByTestId('palette-delay').click();
  await page.getByTestId('node-delay').waitFor();
  // The server's validation error about the missing trigger and the bad duration.
  await page.getByTestId('node-panel').locator('[data-field="duration"] input').fill('soon');
  await page.getByTestId('errors-delay').filter({ hasText: 'duration' }).waitFor({ timeout: 10_000 });
  await page.locator('.react-flow__pane').click({ position: { x: 600, y: 20 } });
  await page.keyboard.press('Control+z'); // the duration edit
  await page.keyboard.press('Control+z'); // the node
  await page.getByTestId('node-delay').waitFor({ state: 'detached' });
  await page.keyboard.press('Control+Shift+z');
  await page.getByTestId('node-delay').waitFor();
  await page.keyboard.press('Control+y');
  await page.getByTestId('palette-exit').click();
  await page.locator('.react-flow__pane').click({ position: { x: 600, y: 20 } });
  await page.keyboard.press('Control+a');
  await page.keyboard.press('Delete');
  await page.getByTestId('node-delay').waitFor({ state: 'detached' });
  await page.getByTestId('node-exit').waitFor({ state: 'detached' });
  await page.keyboard.press('Control+z');
  await page.getByTestId('node-exit').waitFor();
  // Publishing an invalid draft: the server's message and code.
  await page.getByRole('button', { name: 'Publish…' }).click();
  await b.expectingHttpErrors(async () => {
    await page.getByRole('button', { name: 'Publish now' }).click();
    await page.getByRole('dialog', { name: 'Publish' }).getByRole('alert').filter({ hasText: 'invalid_journey' }).waitFor();
  });
  await page.getByRole('button', { name: 'Cancel' }).click();
  assert.deepEqual(b.problems, []);
});

test('template preview rendered by the server for a contact', async () => {
  const { page } = b;
  await page.goto(server.base + '/templates/cart-reminder-email');
  await page.getByLabel('Contact id').fill('1');
  const frame = page.frameLocator('iframe[title="Email preview"]');
  await frame.getByText('Hi Ann').waitFor();
  await page.getByRole('button', { name: 'Phone' }).click();
  const width = await page.locator('iframe[title="Email preview"]').evaluate((el) => el.getBoundingClientRect().width);
  assert.equal(Math.round(width), 375);
  await page.goto(server.base + '/templates/cart-reminder-sms');
  await page.getByTestId('sms-bubble').filter({ hasText: 'Your cart at Acme' }).waitFor();
  await page.getByTestId('sms-segments').filter({ hasText: '1 segment' }).waitFor();
  // Edit and save: the preview follows.
  await page.getByLabel('Body', { exact: true }).fill('Hi {{ contact.first_name }}, your cart misses you ✓');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByTestId('sms-bubble').filter({ hasText: 'Hi Ann, your cart misses you ✓' }).waitFor();
  await page.getByTestId('sms-segments').filter({ hasText: 'UCS-2' }).waitFor();
  // The edit is version 2; version 1 stays what the published journey sends, until it is
  // published again (the publish dialog says so).
  await page.getByTestId('template-version-2').filter({ hasText: '(current)' }).waitFor();
  await page.getByTestId('template-version-1').filter({ hasText: 'abandoned-cart v1' }).waitFor();
  await page.goto(server.base + '/journeys/abandoned-cart');
  await page.getByRole('button', { name: 'Publish…' }).click();
  await page.getByTestId('template-updates').filter({ hasText: 'cart-reminder-sms (version 1 → 2)' }).waitFor();
  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.goto(server.base + '/templates/cart-reminder-sms');
  // A template the server refuses: its message and code.
  await b.expectingHttpErrors(async () => {
    await page.getByLabel('Body', { exact: true }).fill('{% if %}');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('alert').filter({ hasText: 'invalid_template' }).waitFor();
  });
  assert.deepEqual(b.problems, []);
});

test('sign-out ends the session', async () => {
  const { page } = b;
  await page.goto(server.base + '/journeys');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Admin token').waitFor();
  const r = await page.evaluate(async () => (await fetch('/v1/journeys')).status);
  assert.equal(r, 401);
  assert.ok(ADMIN_TOKEN);
});
