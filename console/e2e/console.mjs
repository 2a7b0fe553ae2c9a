// keel console, end to end: the flows a person on call goes through, in
// headless Chromium (Debian's, driven by playwright-core).
//
// e2e_test.go runs this script (go test ./console/e2e/): it seeds a live
// keel, serves the console over it and passes
//
//   KEEL_E2E_URL        the console's address
//   KEEL_E2E_SCENARIO   what it seeded, as JSON (e2e_test.go's scenario)
//   KEEL_E2E_ARTIFACTS  where the screenshots go
//   KEEL_E2E_CHROMIUM   the browser
//
// and POST $KEEL_E2E_URL/_e2e/open/{job,message,run}, which lets the last
// piece of an action's work finish, so a flow sees the page before the work
// ends and then sees the page update itself, without a reload.
//
// Each flow prints "ok" or "FAIL" and its time; a failed flow leaves a
// screenshot FAIL-<flow>.png. The script exits 1 when any flow failed.
import { chromium } from 'playwright-core';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this script through go test ./console/e2e/`);
  return v;
};
const base = need('KEEL_E2E_URL');
const sc = JSON.parse(need('KEEL_E2E_SCENARIO'));
const artifacts = need('KEEL_E2E_ARTIFACTS');
const executablePath = need('KEEL_E2E_CHROMIUM');

// How long a flow waits for what it expects to see. The pages update
// themselves every 500ms in this test.
const timeout = 15_000;

await mkdir(artifacts, { recursive: true });
for (const f of await readdir(artifacts)) {
  if (f.startsWith('FAIL-')) await rm(path.join(artifacts, f));
}
const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'],
});
console.log(`Chromium ${browser.version()}`);
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
context.setDefaultTimeout(timeout);
const page = await context.newPage();

// What goes wrong on a page without failing a wait: script errors (a
// Content-Security-Policy violation, say), console errors, failed requests.
// The console serves no favicon; Chromium's request for one is not a
// problem of the page.
let problems = [];
const favicon = (url) => new URL(url).pathname === '/favicon.ico';
page.on('pageerror', (e) => problems.push(`script error on ${page.url()}: ${e.message}`));
page.on('console', (m) => {
  if (m.type() === 'error' && !favicon(m.location().url || page.url())) problems.push(`console error on ${page.url()}: ${m.text()}`);
});
page.on('response', (r) => {
  if (r.status() >= 400 && !favicon(r.url())) problems.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`);
});
// The confirmations a destructive action asks, accepted.
let dialogs = [];
page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });

const main = page.locator('main');

// visit opens a page of the console and checks it answered 200.
async function visit(p) {
  const res = await page.goto(base + p);
  if (!res || res.status() !== 200) throw new Error(`GET ${p}: ${res ? res.status() : 'no response'}`);
}

async function shot(name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

// see waits until text (a string, found as a substring, or a RegExp) is
// visible in scope (not, say, in a closed <select>'s options).
async function see(text, scope = main) {
  try {
    await scope.getByText(text).filter({ visible: true }).first().waitFor();
  } catch (e) {
    throw new Error(`did not see ${text} on ${page.url()}`, { cause: e });
  }
}

// heading waits for the page's h1.
async function heading(name) {
  try {
    await page.getByRole('heading', { level: 1, name }).waitFor();
  } catch (e) {
    throw new Error(`no heading ${name} on ${page.url()}`, { cause: e });
  }
}

// row is the table row that holds text.
const row = (text, scope = main) => scope.getByRole('row').filter({ hasText: text });

// state waits until scope shows the state badge name (the console's
// .state spans).
async function state(name, scope = main) {
  try {
    await scope.locator('.state').filter({ hasText: new RegExp(`^\\s*${name}\\s*$`) }).first().waitFor();
  } catch (e) {
    throw new Error(`no state ${name} on ${page.url()}`, { cause: e });
  }
}

// stay marks the page; the check it returns fails when the page was left
// or reloaded since, so what the flow saw meanwhile came from the page's
// own live updates.
async function stay() {
  const mark = `keel-e2e-${Math.random()}`;
  await page.evaluate((m) => { window.keelE2E = m; }, mark);
  const url = page.url();
  return async () => {
    const still = await page.evaluate(() => window.keelE2E);
    if (still !== mark || page.url() !== url) throw new Error(`the page was reloaded or left (now ${page.url()})`);
  };
}

// open lets the gated work of an action finish (see e2e_test.go's gate).
async function open(gate) {
  const res = await fetch(`${base}/_e2e/open/${gate}`, { method: 'POST' });
  if (res.status !== 204) throw new Error(`opening gate ${gate}: ${res.status} ${await res.text()}`);
}

// click presses the button name in scope and waits for the page it leads to.
async function click(name, scope = main) {
  const button = scope.getByRole('button', { name, exact: true });
  await Promise.all([page.waitForEvent('load'), button.click()]);
}

const flows = [];
const flow = (name, fn) => flows.push({ name, fn });

flow('overview', async () => {
  await visit('/');
  await heading('Overview');
  await see(/^1\s*dead jobs/);
  await see(/^1\s*outbox dead letters/);
  await row(sc.pauseQueue).first().waitFor();
  await row(sc.workflow).first().waitFor();
  await row(sc.subscription).first().waitFor();
  await see(sc.parkedError, row(sc.parked));
  const charts = await main.getByRole('img').count();
  if (charts < 3) throw new Error(`the overview shows ${charts} charts, want 3`);
  // The page updates itself: the header says when it last did.
  await see(/^updated /, page.locator('header'));
  await shot('overview');
});

flow('queues: pause and resume', async () => {
  await visit('/queues');
  await heading('Queues');
  const q = row(sc.pauseQueue);
  await state('active', q);
  dialogs = [];
  await click('Pause', q);
  if (!dialogs.some((d) => d.includes(sc.pauseQueue))) throw new Error(`pausing asked ${JSON.stringify(dialogs)}, not about ${sc.pauseQueue}`);
  await heading('Queues');
  await state('paused', q);
  await q.getByRole('button', { name: 'Resume' }).waitFor();
  await shot('queue-paused');
  await click('Resume', q);
  await state('active', q);
  await q.getByRole('button', { name: 'Pause' }).waitFor();
  await shot('queues');
});

// link is the link whose whole text is name.
const link = (name, scope = main) => scope.getByRole('link', { name, exact: true });

// rowOf is the table row that links to name.
const rowOf = (name, scope = main) => scope.getByRole('row').filter({ has: page.getByRole('link', { name, exact: true }) });

// h1 is the page's heading; detail pages show the state in it.
const h1 = page.getByRole('heading', { level: 1 });

// follow clicks the link name and waits for the page it leads to.
async function follow(name, scope = main) {
  await Promise.all([page.waitForEvent('load'), link(name, scope).first().click()]);
}

flow('jobs and a dead job', async () => {
  await visit('/jobs');
  await heading('Jobs');
  const job = String(sc.job);
  await state('discarded', rowOf(job));
  await see(sc.jobKind, rowOf(job));
  await see(sc.jobError, rowOf(job));
  await see('receipt.send');
  await state('completed');
  await shot('jobs');

  await visit(`/jobs?state=discarded`);
  await rowOf(job).waitFor();
  if (await main.getByRole('row').filter({ has: page.getByRole('link') }).count() !== 1) {
    throw new Error('the discarded filter shows other jobs than the seeded one');
  }
  await follow(job);
  await heading(new RegExp(`^Job ${job}\\b`));
  await state('discarded', h1);
  await see(sc.jobError);
  await see('INV-2026-0042');
  await see(/attempt 1/);
  await page.getByRole('button', { name: 'Retry now' }).waitFor();
  await shot('job');
});

flow('outbox and a dead letter', async () => {
  await visit('/outbox');
  await heading('Outbox');
  const topic = main.getByRole('row').filter({ has: page.getByRole('cell', { name: sc.topic, exact: true }) }).first();
  await topic.getByRole('button', { name: 'Requeue all dead' }).waitFor();
  await state('dead', rowOf(sc.message));
  await see(sc.messageError, rowOf(sc.message));
  await rowOf(sc.message).getByRole('button', { name: 'Requeue', exact: true }).waitFor();
  await shot('outbox');

  await follow(sc.message);
  await heading(new RegExp(`^Message ${sc.message}`));
  await state('dead', h1);
  await see(sc.messageError);
  await see('"amount_cents": 4999');
  await main.getByRole('row').filter({ hasText: 'source' }).filter({ hasText: 'e2e' }).waitFor();
  await shot('message');
});

flow('sagas and a waiting run', async () => {
  await visit('/sagas');
  await heading(/^Sagas/);
  await state('waiting', rowOf(sc.run));
  await see(sc.signal, rowOf(sc.run));
  await state('succeeded', rowOf(sc.doneRun));
  await shot('sagas');

  await follow(sc.run);
  await heading(new RegExp(`^Run ${sc.run}\\b`));
  await state('waiting', h1);
  for (const step of ['reserve-stock', 'charge-card']) await see(step);
  await see(/now · waiting for/);
  await page.getByRole('button', { name: 'Send signal' }).waitFor();
  await shot('saga');
});

flow('events and a stream', async () => {
  await visit('/events');
  await heading(/^Events/);
  await see(/^4\s*feed head position/);
  for (const type of sc.eventTypes) await see(type);
  await shot('events');

  await follow(sc.stream);
  await heading(`Stream ${sc.stream}`);
  for (const [i, type] of sc.eventTypes.entries()) await see(`${i + 1}. ${type}`);
  await shot('stream');
});

flow('subscriptions', async () => {
  await visit('/events/subscriptions');
  await heading('Subscriptions');
  const following = row(sc.subscription);
  await following.waitFor();
  await see(sc.parkedError, row(sc.parked));
  await state('parked', row(sc.parked));
  await row(sc.parked).getByRole('button', { name: 'Resume' }).waitFor();
  await shot('subscriptions');
});

flow('retry the dead job, watch it complete', async () => {
  const job = String(sc.job);
  await visit(`/jobs/${job}`);
  await click('Retry now');
  if (new URL(page.url()).pathname !== `/jobs/${job}`) throw new Error(`retrying led to ${page.url()}`);
  const stayed = await stay();
  await open('job');
  await state('completed', h1);
  await stayed();
  await see(sc.jobError); // the failed first attempt stays in its history
  await shot('job-retried');
});

flow('requeue the dead letter, watch it be delivered', async () => {
  await visit(`/outbox/${sc.message}`);
  await click('Requeue');
  if (new URL(page.url()).pathname !== `/outbox/${sc.message}`) throw new Error(`requeueing led to ${page.url()}`);
  const stayed = await stay();
  await open('message');
  await state('delivered', h1);
  await stayed();
  await shot('message-delivered');
});

flow('signal the waiting run, watch it succeed', async () => {
  await visit(`/sagas/${sc.run}`);
  await main.getByRole('textbox', { name: 'Signal', exact: true }).fill(sc.signal);
  await main.getByRole('textbox', { name: /^Value \(JSON\)/ }).fill('{"approved_by": "on-call"}');
  await click('Send signal');
  if (new URL(page.url()).pathname !== `/sagas/${sc.run}`) throw new Error(`signalling led to ${page.url()}`);
  const stayed = await stay();
  await open('run');
  await state('succeeded', h1);
  await stayed();
  await see('ship');
  await see(`shipped ${sc.run}`);
  // The signal's value is the wait's output, folded until opened.
  const wait = main.getByRole('listitem').filter({ hasText: `signal wait ${sc.signal}` });
  await wait.getByText('output', { exact: true }).click();
  await see('"approved_by": "on-call"', wait);
  await shot('saga-signalled');
});

let failed = 0;
for (const { name, fn } of flows) {
  problems = [];
  const start = performance.now();
  let err;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  if (!err && problems.length) err = new Error(problems.join('\n'));
  const took = `${((performance.now() - start) / 1000).toFixed(1)}s`;
  if (err) {
    failed++;
    console.log(`FAIL ${name} (${took}): ${err.message}${err.cause ? `\n     ${err.cause.message.split('\n')[0]}` : ''}`);
    if (problems.length && err.message !== problems.join('\n')) console.log(`     also: ${problems.join('\n     also: ')}`);
    await page.screenshot({ path: path.join(artifacts, `FAIL-${name.replace(/[^a-z0-9]+/gi, '-')}.png`), fullPage: true }).catch(() => {});
  } else {
    console.log(`ok   ${name} (${took})`);
  }
}
await browser.close();
console.log(`${flows.length - failed} of ${flows.length} flows ok`);
process.exit(failed ? 1 : 0);
