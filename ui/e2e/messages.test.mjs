// Looking at a sent email in the web app counts as neither an open nor a click: the server hands
// the app the HTML without its open pixel and with its links untracked, and the frame loads
// nothing remote and opens no link anyway (defence in depth). The server's tracking links point at a stand-in here
// (`--public-url`), an HTTP server of the test that records what asks it for anything.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { openBrowser, signIn, startServer } from './harness.mjs';

let server;
let b;
let tracker;
/** Every path the stand-in tracker was asked for. */
const tracked = [];

before(async () => {
  tracker = createServer((req, res) => {
    tracked.push(req.url);
    res.writeHead(204).end();
  });
  await new Promise((r) => tracker.listen(0, '127.0.0.1', r));
  server = await startServer(['--public-url', `http://127.0.0.1:${tracker.address().port}`]);
  b = await openBrowser();
});

after(async () => {
  await b?.close();
  await server?.stop();
  tracker?.close();
});

test('looking at a sent email counts no open and follows no link', async () => {
  const { page } = b;
  await server.api('PUT', '/v1/templates/hello', {
    id: 'hello',
    channel: 'email',
    subject: 'Hello',
    html: '<p>Hello from the shop. <a href="https://shop.example/new">See what is new</a></p>',
  });
  await server.api('POST', '/v1/journeys', {
    id: 'hi',
    name: 'Hi',
    nodes: [
      { id: 'start', type: 'trigger', event: 'Signed Up' },
      { id: 'mail', type: 'send_email', template: 'hello' },
    ],
    edges: [{ from: 'start', to: 'mail' }],
  });
  await server.api('POST', '/v1/journeys/hi/publish');
  await server.api('POST', '/v1/identify', { userId: 'ann', traits: { email: 'ann@example.com' } }, 'write');
  await server.api('POST', '/v1/track', { userId: 'ann', event: 'Signed Up' }, 'write');
  await server.api('POST', '/v1/clock/advance', { seconds: 60 });
  // As sent, the email carries the open pixel and a tracked link.
  const { messages } = await server.api('GET', '/v1/messages?journey_id=hi');
  assert.equal(messages.length, 1, JSON.stringify(messages));
  assert.match(messages[0].html, /127\.0\.0\.1:\d+\/t\/o\//);
  assert.match(messages[0].html, /127\.0\.0\.1:\d+\/t\/c\//);

  await signIn(page, server.base);
  await page.getByRole('link', { name: 'Contacts', exact: true }).click();
  await page.getByRole('link', { name: 'ann', exact: true }).click();
  const timeline = page.getByTestId('timeline');
  await timeline.locator('li', { hasText: 'template hello' }).getByRole('button', { name: 'show' }).click();
  const frame = page.frameLocator('iframe[title^="Message"]');
  await frame.getByText('Hello from the shop.').waitFor();
  // The app asks for the HTML without its tracking (`preview=true`): no pixel in it, and the
  // link points at its destination, not at the tracker.
  assert.equal(await frame.locator('img').count(), 0);
  const link = frame.getByRole('link', { name: 'See what is new' });
  assert.equal(await link.getAttribute('href'), 'https://shop.example/new');
  await link.click();
  await page.waitForTimeout(500);
  assert.deepEqual(tracked, [], 'the message view asked the tracker for something');
  const stats = await server.api('GET', '/v1/journeys/hi/stats');
  const mail = stats.nodes.find((n) => n.node === 'mail');
  assert.equal(mail.opened, 0);
  assert.equal(mail.clicked, 0);
});
