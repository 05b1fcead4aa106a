// End-to-end harness: a real `waymark serve` (with a simulated clock unless a test asks for the
// system's) on a temporary data directory and a free port, and Debian's Chromium driven by
// playwright-core (no browser download).
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const ADMIN_TOKEN = 'e2e-admin-token-0123456789';
export const WRITE_KEY = 'e2e-write-key-0123456789';
export const SCREENSHOTS = join(here, 'screenshots');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export function binary() {
  const bin = process.env.WAYMARK_BIN ?? resolve(here, '../../target/debug/waymark');
  if (!existsSync(bin)) throw new Error(`no waymark binary at ${bin}: run cargo build -p waymark or set WAYMARK_BIN`);
  return bin;
}

/** Starts the server (with `extraArgs` for `waymark serve`; the clock is simulated unless they
 * give `--clock`); resolves once it prints its address. */
export async function startServer(extraArgs = []) {
  const data = mkdtempSync(join(tmpdir(), 'waymark-e2e-'));
  const env = { ...process.env, WAYMARK_ADMIN_TOKEN: ADMIN_TOKEN, WAYMARK_WRITE_KEY: WRITE_KEY, RUST_LOG: 'warn' };
  for (const k of ['WAYMARK_DATA', 'WAYMARK_LISTEN', 'WAYMARK_CLOCK', 'WAYMARK_CONFIG', 'WAYMARK_PUBLIC_URL', 'WAYMARK_SMTP_URL', 'WAYMARK_SMS_URL']) delete env[k];
  const clock = extraArgs.includes('--clock') ? [] : ['--clock', 'simulated'];
  const child = spawn(binary(), ['serve', '--data', data, '--listen', '127.0.0.1:0', ...clock, ...extraArgs], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const base = await new Promise((resolveBase, reject) => {
    const timer = setTimeout(() => reject(new Error(`waymark did not start in 60 s:\n${output}`)), 60_000);
    const onData = (chunk) => {
      output += chunk;
      const m = /waymark listening on (http:\/\/[^\s]+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolveBase(m[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (c) => (output += c));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`waymark exited (${code}) before listening:\n${output}`));
    });
  });
  const api = async (method, path, body, auth = 'admin') => {
    const headers = { 'content-type': 'application/json' };
    if (auth === 'admin') headers.authorization = `Bearer ${ADMIN_TOKEN}`;
    if (auth === 'write') headers.authorization = `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`;
    const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON
    }
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return json;
  };
  return {
    base,
    api,
    output: () => output,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** A headless Chromium page at 1280x800 that records console errors. */
export async function openBrowser() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  let allowHttpErrors = false;
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (allowHttpErrors && /Failed to load resource: the server responded with a status of 4\d\d/.test(text)) return;
    problems.push(`console: ${text}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // "Leave the page with unsaved changes?": yes.
  page.on('dialog', (d) => void d.accept());
  mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    browser,
    page,
    problems,
    /** Runs `fn` during which 4xx answers the test provokes on purpose are not console errors. */
    async expectingHttpErrors(fn) {
      allowHttpErrors = true;
      try {
        return await fn();
      } finally {
        // Let late console messages of the provoked answers arrive before counting again.
        await page.waitForTimeout(200);
        allowHttpErrors = false;
      }
    },
    async close() {
      await browser.close();
    },
  };
}

export async function signIn(page, base) {
  await page.goto(base + '/');
  await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Journeys' }).waitFor();
}
