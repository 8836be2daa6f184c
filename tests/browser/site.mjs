// Drives Debian's chromium over berth's catalog site, as a visitor would, and checks
// what tests/tests/site.rs asks for. Run by that test (not on its own):
//
//   node site.mjs  with env  SITE_URL        root of the site (ends with '/')
//                            SITE_REPO       a public repository with a README
//                            SITE_FILTER     text typed into the search box
//                            SITE_EXPECT_MATCH  a repository the filter keeps
//                            SITE_PUBLIC     comma-separated public repositories
//                            SITE_PRIVATE    comma-separated names that must never appear
//                            SITE_HOST       registry host in pull commands
//                            BERTH_SCREENSHOTS  optional: directory for screenshots
//
// Prints one JSON object (what it read) on stdout; exits non-zero on a failed check.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const env = (name) => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const siteUrl = env('SITE_URL');
const repo = env('SITE_REPO');
const filter = env('SITE_FILTER');
const expectMatch = env('SITE_EXPECT_MATCH');
const publicRepos = env('SITE_PUBLIC').split(',');
const privateRepos = env('SITE_PRIVATE').split(',');
const host = env('SITE_HOST');
const shots = process.env.BERTH_SCREENSHOTS;

// Runs in the page: the basic accessibility checks, returned as a list of problems.
function accessibilityProblems() {
  const problems = [];
  if (!document.documentElement.lang) problems.push('no lang attribute');
  const h1s = document.querySelectorAll('h1');
  if (h1s.length !== 1) problems.push(`${h1s.length} h1 elements`);
  let last = 0;
  for (const h of document.querySelectorAll('h1,h2,h3,h4,h5,h6')) {
    const level = Number(h.tagName[1]);
    if (level > last + 1) problems.push(`heading ${h.tagName} "${h.textContent}" skips from h${last}`);
    last = level;
  }
  for (const input of document.querySelectorAll('input,select,textarea')) {
    if (input.type === 'hidden') continue;
    const labelled = (input.id && document.querySelector(`label[for="${input.id}"]`)) ||
      input.closest('label') || input.getAttribute('aria-label') || input.getAttribute('aria-labelledby');
    if (!labelled) problems.push(`input ${input.id || input.name} has no label`);
  }
  const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  // The first opaque background up the tree (white where none is set).
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const texts = document.querySelectorAll('h1,h2,h3,p,a,li,td,th,code,label,button,footer,time');
  for (const el of texts) {
    if (!el.offsetParent && el.tagName !== 'BODY') continue; // hidden
    if (!el.textContent.trim()) continue;
    const style = getComputedStyle(el);
    const fg = luminance(rgb(style.color));
    const bg = luminance(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < 4.5) problems.push(`contrast ${ratio.toFixed(2)} of ${el.tagName} "${el.textContent.trim().slice(0, 30)}"`);
  }
  return problems;
}

// Playwright gives the browser a fresh --user-data-dir of its own (refusing one in
// args); its temporary files go under this directory, removed at the end.
const scratch = mkdtempSync(join(tmpdir(), 'berth-chromium-'));
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  downloadsPath: scratch,
  tracesDir: scratch,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const result = {};
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  // --- home ---------------------------------------------------------------
  const response = await page.goto(siteUrl);
  assert.equal(response.status(), 200, 'home page status');
  const html = await page.content();
  for (const name of publicRepos) assert.ok(html.includes(name), `home lists ${name}`);
  for (const name of privateRepos) assert.ok(!html.includes(name), `home must not mention ${name}`);
  const index = await (await page.request.get(new URL('site/index.json', siteUrl).href)).text();
  for (const name of privateRepos) assert.ok(!index.includes(name), `index.json must not mention ${name}`);
  result.homeProblems = await page.evaluate(accessibilityProblems);
  assert.deepEqual(result.homeProblems, [], 'home accessibility');
  if (shots) {
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: join(shots, 'site-home-laptop.png'), fullPage: true });
  }

  // --- search -------------------------------------------------------------
  const visible = () => page.$$eval('li[data-name]', (lis) => lis.filter((li) => !li.hidden).map((li) => li.dataset.name));
  result.before = await visible();
  await page.getByLabel('Search repositories').pressSequentially(filter, { delay: 20 });
  await page.waitForFunction((n) => document.querySelectorAll('li[data-name]:not([hidden])').length < n, result.before.length);
  result.after = await visible();
  assert.ok(result.after.includes(expectMatch), `search keeps ${expectMatch}`);
  assert.ok(result.after.length < result.before.length, 'search filters the list');
  result.count = await page.textContent('#count');
  await page.getByLabel('Search repositories').fill('');
  await page.waitForFunction((n) => document.querySelectorAll('li[data-name]:not([hidden])').length === n, result.before.length);

  // --- repository page ------------------------------------------------------
  await page.click(`a[href="r/${repo}/"]`);
  await page.waitForSelector('h1');
  result.repoUrl = page.url();
  result.title = await page.textContent('h1');
  assert.equal(result.title, repo);
  result.pull = (await page.textContent('#pull-command')).trim();
  assert.ok(result.pull.startsWith(`docker pull ${host}/${repo}:`), `pull command: ${result.pull}`);
  result.tags = await page.$$eval('section[aria-labelledby="tags"] tbody tr', (rows) =>
    rows.map((r) => Array.from(r.querySelectorAll('td'), (td) => td.textContent.trim())));
  result.readme = (await page.textContent('section.readme')).trim();
  result.injected = await page.evaluate(() => [window.pwned, window.pwnedImg, window.pwnedLink]);
  // Clicking the README's javascript: link must run nothing either.
  const links = await page.$$('section.readme a');
  for (const link of links) await link.click({ noWaitAfter: true }).catch(() => {});
  await page.waitForTimeout(200);
  result.injectedAfterClicks = await page.evaluate(() => [window.pwned, window.pwnedImg, window.pwnedLink]);
  result.scriptsInReadme = await page.$$eval('section.readme script, section.readme [onerror], section.readme [onclick]', (els) => els.length);
  result.dialogs = dialogs;
  result.pageErrors = pageErrors;
  result.repoProblems = await page.evaluate(accessibilityProblems);
  assert.deepEqual(result.repoProblems, [], 'repository page accessibility');
  if (shots) await page.screenshot({ path: join(shots, 'site-repo-laptop.png'), fullPage: true });

  // --- phone --------------------------------------------------------------
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const mobile = await phone.newPage();
  await mobile.goto(siteUrl);
  result.phoneOverflow = await mobile.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  if (shots) await mobile.screenshot({ path: join(shots, 'site-home-phone.png'), fullPage: true });
  await mobile.goto(result.repoUrl);
  result.phoneRepoOverflow = await mobile.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  if (shots) await mobile.screenshot({ path: join(shots, 'site-repo-phone.png'), fullPage: true });

  // --- without JavaScript: the list is all there -------------------------------
  const nojs = await browser.newContext({ javaScriptEnabled: false });
  const plain = await nojs.newPage();
  await plain.goto(siteUrl);
  result.noJsListed = await plain.$$eval('li[data-name]', (lis) => lis.map((li) => li.dataset.name));
} finally {
  await browser.close();
  rmSync(scratch, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
