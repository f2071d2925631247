// tests/ui/console.mjs — the web console (ui/, served by tfsyncd at /ui/) driven in a real
// headless browser: Debian's chromium through puppeteer-core (tests/tools, pinned; it
// downloads no browser), against the real daemon with the real pacs and cama plugins on
// databases cloned from the templates scripts/test.sh seeds.
//
// The flows: sign in with a key; start a full run from the Runs page and watch its
// progress bar move while the run is held (a transaction of the test holds, uncommitted,
// the CAMA row of a parcel in a later batch, so the run's upsert of it waits on the row
// lock), then see it succeed once the hold is released; an incremental run that parks a
// manual conflict and makes two dead letters (the script made to fail on two properties);
// the conflict side by side, an invalid field-by-field merge refused with its reasons,
// then a valid one, and the CAMA row changed as merged (SQL); the dead letter's script
// line, the script fixed, the dead letter replayed and the CAMA row written; a second dead
// letter's discard refused to the operate key, then done with the admin key (gone from the
// open list, 'discarded' in the store); a record's
// history on the Audit page; a read key refused when it starts a run, that flow by the
// keyboard alone (the skip link too); the banner while the daemon is stopped, gone when
// it answers again; the console over the daemon's TLS (a self-signed certificate made
// here, trusted by this test's browser only). axe-core on every page (no serious or
// critical violation), a screenshot of every page into --out, and no Content-Security-
// Policy violation and no uncaught error in any page. Every wait polls with a deadline.
//
// Usage (tests/ui/CMakeLists.txt registers it):
//   node console.mjs --source DIR --build DIR --plugin-dir DIR --tools DIR --out DIR
// PostgreSQL from TFS_TEST_PGHOST/PORT/USER (or PGHOST/PORT/USER). TFS_TEST_KEEP=1 keeps
// the folder with the config and the logs; TFS_UI_CHROMIUM names another browser binary.
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { harness } from '../tools/harness.mjs';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
for (const a of ['source', 'build', 'plugin-dir', 'tools', 'out'])
    if (!args[a]) {
        console.error(`ui: missing --${a}; usage: node console.mjs --source DIR --build DIR --plugin-dir DIR --tools DIR --out DIR`);
        process.exit(1);
    }

const require = createRequire(path.join(args.tools, 'package.json'));
const puppeteer = require('puppeteer-core');
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const CHROMIUM = process.env.TFS_UI_CHROMIUM || '/usr/bin/chromium';
const ROLL_YEAR = 2026;
const PAIR = 'pacs-to-cama';
const KEYS = { read: 'read-key', operate: 'operate-key', admin: 'admin-key' };

const { work, pg, children, fail, say, psql, conninfo, clone, logTail, until, startDaemon: startFrom, run } =
    harness({ tag: 'ui', name: 'ui', build: args.build });
const shots = args.out;
fs.mkdirSync(shots, { recursive: true });
const browsers = [];
const pageProblems = [];
let passed = 0;

function ok(what) {
    passed++;
    console.log(`ok - ${what}`);
}

// ---- PostgreSQL -------------------------------------------------------------------------

// A transaction of psql's that stays open: the row lock that holds a run.
async function holdRow(db, sql) {
    const p = spawn('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', pg.host, '-p', pg.port, '-U', pg.user, '-d', db],
        { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(p);
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.exited = new Promise((r) => p.on('exit', r));
    p.stdin.write(`BEGIN;\n${sql};\nSELECT 'held';\n`);
    await until('the row lock taken', 10000, async () => {
        if (p.exitCode !== null) fail(`psql ended: ${out}`);
        return out.includes('held');
    });
    return {
        release: async () => {
            p.stdin.end('ROLLBACK;\n');
            await p.exited;
        },
    };
}

// ---- processes --------------------------------------------------------------------------

// The config written with its ready file, then the daemon started on it.
async function startDaemon(cfg, name) {
    const configPath = path.join(work, `${name}.json`);
    const ready = path.join(work, `${name}.ready`);
    fs.writeFileSync(configPath, JSON.stringify({ ...cfg, listen: { ...cfg.listen, ready_file: ready } }, null, 2));
    return startFrom(configPath, ready, name);
}

// ---- the browser ------------------------------------------------------------------------

async function launch(extra = {}) {
    if (!fs.existsSync(CHROMIUM)) fail(`no browser at ${CHROMIUM}: scripts/deps.sh installs Debian's chromium`);
    const b = await puppeteer.launch({
        executablePath: CHROMIUM, headless: true,
        args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions'],
        defaultViewport: { width: 1366, height: 768 }, ...extra,
    });
    browsers.push(b);
    const page = await b.newPage();
    page.setDefaultTimeout(20000);
    page.on('pageerror', (e) => pageProblems.push(`uncaught in the page: ${e.message}`));
    page.on('console', (m) => {
        const t = m.text();
        if (/Content Security Policy/i.test(t)) pageProblems.push(`CSP violation: ${t}`);
    });
    return page;
}

// axe-core over the page as it is: no serious or critical violation. The script goes in
// through the DevTools protocol, not a <script> tag, so the page's CSP stays as served.
async function accessible(page, name) {
    await page.evaluate(AXE);
    const v = await page.evaluate(async () => {
        const r = await window.axe.run(document, { resultTypes: ['violations'] });
        return r.violations.map((x) => ({ id: x.id, impact: x.impact, help: x.help, nodes: x.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
    });
    const bad = v.filter((x) => x.impact === 'serious' || x.impact === 'critical');
    if (bad.length) fail(`axe on the ${name} page: ${JSON.stringify(bad, null, 1)}`);
    const minor = v.map((x) => `${x.id} (${x.impact})`);
    ok(`axe: no serious or critical violation on the ${name} page${minor.length ? `; minor: ${minor.join(', ')}` : ''}`);
}

async function shot(page, name) {
    await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

async function visit(page, name) {
    await accessible(page, name);
    await shot(page, name);
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent);

async function waitText(page, sel, re, what, ms = 20000) {
    const src = re.source, flags = re.flags;
    try {
        await page.waitForFunction((s, r, f) => {
            const els = [...document.querySelectorAll(s)];
            return els.some((e) => new RegExp(r, f).test(e.textContent));
        }, { timeout: ms, polling: 50 }, sel, src, flags);
    } catch (e) {
        const seen = await page.$$eval(sel, (els) => els.map((x) => x.textContent).join(' | ')).catch(() => '');
        fail(`${what}: no ${sel} matching ${re} within ${ms / 1000} s; seen: ${seen.slice(0, 800)}`);
    }
}

async function signIn(page, base, k) {
    await page.goto(`${base}/ui/`);
    await page.waitForSelector('#key');
    await page.type('#key', k);
    await page.keyboard.press('Enter');
    await page.waitForSelector(`section[data-pair="${PAIR}"]`);
}

// ---- the run ----------------------------------------------------------------------------

async function main() {
    const t0 = Date.now();
    const db = {
        pacs: await clone('tfs_tmpl_pacs300', 'pacs'),
        cama: await clone('tfs_tmpl_cama', 'cama'),
        state: await clone('tfs_tmpl_state', 'state'),
    };
    // The transforms copied, so the test can break a script and fix it.
    const transforms = path.join(work, 'transforms');
    fs.cpSync(path.join(args.source, 'transforms'), transforms, { recursive: true });
    const script = path.join(transforms, 'pacs_to_cama.lua');
    const good = fs.readFileSync(script, 'utf8');
    const sha = (k) => crypto.createHash('sha256').update(k).digest('hex');
    const cfg = {
        listen: { address: '127.0.0.1', port: 0 },
        state: { conninfo: conninfo(db.state) },
        plugin_dir: args['plugin-dir'],
        transform_dir: transforms,
        roll_year: ROLL_YEAR,
        workers: 2,
        api_keys: [{ name: 'reader', role: 'read', sha256: sha(KEYS.read) },
            { name: 'operator', role: 'operate', sha256: sha(KEYS.operate) },
            { name: 'admin', role: 'admin', sha256: sha(KEYS.admin) }],
        systems: {
            pacs: { plugin: 'pacs', settings: { conninfo: conninfo(db.pacs) } },
            cama: { plugin: 'cama', settings: { conninfo: conninfo(db.cama) } },
        },
        pairs: [{
            name: PAIR, source: 'pacs', target: 'cama', batch_size: 25, conflicts: { policy: 'manual' },
            // One bad record of the two an incremental run reads must not fail the run.
            max_failed_ratio: 1,
            entities: [{ source: 'property', targets: ['pardat', 'asmt'], script: 'pacs_to_cama.lua' }],
        }],
    };
    let d = await startDaemon(cfg, 'tfsyncd');
    const base = `http://127.0.0.1:${d.port}`;
    const page = await launch();

    // -- sign in: a key nobody configured is refused on the page, a real one shows Runs.
    await page.goto(`${base}/ui/`);
    await page.waitForSelector('#key');
    await visit(page, 'sign-in');
    await page.type('#key', 'not-a-key');
    await page.keyboard.press('Enter');
    await waitText(page, '.notice.error', /not accepted/, 'a wrong key refused');
    await page.$eval('#key', (e) => { e.value = ''; });
    await page.type('#key', KEYS.operate);
    await page.keyboard.press('Enter');
    await page.waitForSelector(`section[data-pair="${PAIR}"]`);
    const stored = await page.evaluate(() => [sessionStorage.length, localStorage.length, document.cookie]);
    if (stored[0] !== 1 || stored[1] !== 0 || stored[2] !== '') fail(`the key is kept in sessionStorage only: ${JSON.stringify(stored)}`);
    ok('sign in: a wrong key refused, the operate key signs in, kept in sessionStorage only');

    // -- a full run from the page, its progress seen while it is held, then succeeded.
    const hold = psql(db.pacs, `SELECT parid FROM (SELECT pv.prop_id, p.simple_geo_id AS parid FROM property p
        JOIN property_val pv ON pv.prop_id = p.prop_id AND pv.prop_val_yr = ${ROLL_YEAR}
        WHERE p.simple_geo_id IS NOT NULL ORDER BY pv.prop_id) a OFFSET 160 LIMIT 1`);
    const lock = await holdRow(db.cama, `INSERT INTO pardat (parid, taxyr) VALUES ('${hold}', ${ROLL_YEAR})`);
    const panel = `section[data-pair="${PAIR}"]`;
    await page.click(`${panel} .start-full`);
    await waitText(page, `${panel} .start-msg`, /Run [0-9]+ \(full\) started/, 'the run started');
    await page.waitForFunction((p) => {
        const bar = document.querySelector(`${p} progress[max]`);
        return bar && bar.value > 0 && bar.value < Number(bar.getAttribute('max'));
    }, { timeout: 30000, polling: 50 }, panel).catch(async () => fail(`no progress bar part way while the run is held: ${await text(page, panel)}`));
    const progress = await text(page, `${panel} .progress-text`);
    if (!/property: [0-9]+ of [0-9]+ records \([0-9]+%\), [0-9.]+ records\/s/.test(progress)) fail(`progress text: ${progress}`);
    await waitText(page, `${panel} .run-state`, /running/, 'the run shown running');
    await visit(page, 'runs-progress');
    await lock.release();
    await waitText(page, `${panel} .run-state`, /succeeded/, 'the run succeeded', 60000);
    const written = await page.$eval(`${panel} table.counts tbody tr td:nth-child(3)`, (e) => Number(e.textContent));
    if (!(written > 0)) fail(`written count ${written}`);
    await waitText(page, `${panel} table.systems`, /closed/, 'the breakers shown');
    ok(`runs: progress "${progress}" while held, then succeeded with ${written} written; breakers shown`);
    await visit(page, 'runs');

    // -- an incremental run: a conflict (both sides edited) and two dead letters (the script
    // refuses two properties: one replayed, one discarded).
    const [cp, dp, xp] = psql(db.pacs, `SELECT p.prop_id || ' ' || p.simple_geo_id FROM property p
        JOIN property_val pv ON pv.prop_id = p.prop_id AND pv.prop_val_yr = ${ROLL_YEAR}
        WHERE p.simple_geo_id IS NOT NULL AND pv.prop_inactive_dt IS NULL ORDER BY p.prop_id LIMIT 3`).split('\n').map((l) => l.split(' '));
    psql(db.cama, `UPDATE pardat SET zoning = 'Z-CAMA', nbhd = 'N-CAMA', who = 'appraiser', wen = now() WHERE parid = '${cp[1]}'`);
    psql(db.pacs, `UPDATE property SET zoning = 'Z-PACS' WHERE prop_id = ${cp[0]}`);
    psql(db.pacs, `UPDATE property_val SET hood_cd = 'N-PACS' WHERE prop_id = ${cp[0]} AND prop_val_yr = ${ROLL_YEAR}`);
    psql(db.pacs, `UPDATE property SET zoning = 'Z-DL' WHERE prop_id IN (${dp[0]}, ${xp[0]})`);
    fs.writeFileSync(script, good.replace(/^function map\(p\)\n/m,
        `function map(p)\n  if p.prop_id == ${dp[0]} or p.prop_id == ${xp[0]} then error('no zoning table for this property yet') end\n`));
    await page.click(`${panel} .start-incremental`);
    await waitText(page, `${panel} .run-state`, /partial/, 'the incremental run partial', 60000);
    ok('runs: an incremental run from the page ended partial (a conflict and two dead letters)');

    // -- the conflict: listed, side by side, a refused merge, a merge, CAMA changed.
    await page.click('nav a[data-page="conflicts"]');
    await page.waitForSelector('table.conflicts a.open-conflict');
    await waitText(page, 'table.conflicts', new RegExp(`${cp[0]}\\|${ROLL_YEAR}`), 'the conflict listed');
    await visit(page, 'conflicts');
    await page.click('table.conflicts a.open-conflict');
    await page.waitForSelector('table.sides tr.disputed');
    const disputed = await page.$$eval('table.sides tr.disputed th', (els) => els.map((e) => e.textContent).sort());
    if (disputed.join() !== 'nbhd,zoning') fail(`fields in dispute highlighted: ${disputed}`);
    await visit(page, 'conflict');
    const choose = (field, value) => page.click(`fieldset[data-field="${field}"] input[type=radio][value="${value}"]`);
    await choose('zoning', 'other');
    await page.$eval('fieldset[data-field="zoning"] input[type=text]', (e) => { e.value = ''; });
    await page.type('fieldset[data-field="zoning"] input[type=text]', 'Z-MUCH-TOO-LONG-FOR-CAMA');
    await choose('nbhd', 'target');
    await page.click('.resolve-merge');
    await waitText(page, '.resolve-msg .reasons li', /zoning/, 'the invalid merge refused with its reasons');
    const reasons = await page.$$eval('.resolve-msg .reasons li', (els) => els.map((e) => e.textContent));
    ok(`conflicts: the disputed fields highlighted (${disputed}); an invalid merge refused: ${reasons.join('; ')}`);
    await shot(page, 'conflict-refused');
    await choose('zoning', 'source');
    await page.click('.resolve-merge');
    await waitText(page, '.resolve-msg', /resolved \(record\)/, 'the merge resolved', 30000);
    const row = psql(db.cama, `SELECT zoning || ' ' || nbhd FROM pardat WHERE parid = '${cp[1]}' AND taxyr = ${ROLL_YEAR}`);
    if (row !== 'Z-PACS N-CAMA') fail(`CAMA's row after the merge: ${row}, want zoning Z-PACS (source) and nbhd N-CAMA (target)`);
    await waitText(page, '.conflict-status', /resolved/, 'the conflict shown resolved');
    ok(`conflicts: resolved by a field-by-field merge; CAMA's row now "${row}"`);

    // -- the dead letter: its script line; the script fixed; replayed; CAMA written.
    await page.click('nav a[data-page="dead-letters"]');
    await page.waitForSelector('table.dead-letters tbody tr');
    // The row of a key: its cells' text, and its id.
    const dlRow = (k) => page.$$eval('table.dead-letters tbody tr', (rows, key) => {
        const r = rows.find((x) => x.children[3].textContent === key);
        return r ? { id: r.dataset.id, cells: [...r.children].map((c) => c.textContent) } : null;
    }, `${k}|${ROLL_YEAR}`);
    const dlp = await dlRow(dp[0]), dlx = await dlRow(xp[0]);
    if (!dlp || !dlx) fail(`both dead letters listed: ${await text(page, 'table.dead-letters')}`);
    const dl = dlp.cells;
    if (!/pacs_to_cama\.lua:[0-9]+/.test(dl[5]) || dl[4] !== 'transform' || !/no zoning table/.test(dl[6]))
        fail(`the dead letter's stage, script line and reason: ${JSON.stringify(dl)}`);
    await visit(page, 'dead-letters');
    fs.writeFileSync(script, good);
    await page.click(`table.dead-letters tr[data-id="${dlp.id}"] .replay-one`);
    await waitText(page, '.dl-msg', /1 replayed, 0 failed again/, 'the dead letter replayed', 30000);
    const replayed = psql(db.cama, `SELECT zoning FROM pardat WHERE parid = '${dp[1]}' AND taxyr = ${ROLL_YEAR}`);
    if (replayed !== 'Z-DL') fail(`CAMA's row after the replay: zoning ${replayed}, want Z-DL`);
    ok(`dead letters: stage ${dl[4]}, ${dl[5]}; replayed after the fix, CAMA's zoning now ${replayed}`);

    // -- the other one discarded: the operate key refused (discarding is admin's), the admin
    // key's discard done, gone from the open list and 'discarded' in the store.
    await waitText(page, 'table.dead-letters', new RegExp(`Discard ${dlx.id}`), 'the other dead letter still open');
    await page.click(`table.dead-letters tr[data-id="${dlx.id}"] .discard-one`);
    await waitText(page, '.dl-msg .notice.error', /admin/, 'the operate key refused the discard');
    const refusedDiscard = await text(page, '.dl-msg .notice.error');
    await page.click('#signout');
    await signIn(page, base, KEYS.admin);
    await page.click('nav a[data-page="dead-letters"]');
    await page.waitForSelector(`table.dead-letters tr[data-id="${dlx.id}"] .discard-one`);
    await page.click(`table.dead-letters tr[data-id="${dlx.id}"] .discard-one`);
    await waitText(page, '.dl-msg', new RegExp(`Discard of dead letter ${dlx.id}: done`), 'the dead letter discarded');
    await until('the discarded dead letter gone from the open list', 10000,
        () => page.$(`table.dead-letters tr[data-id="${dlx.id}"]`).then((e) => e === null));
    const dstatus = psql(db.state, `SELECT status FROM tfsync.failed_records WHERE id = ${Number(dlx.id)}`);
    if (dstatus !== 'discarded') fail(`dead letter ${dlx.id} after the discard: ${dstatus}`);
    await visit(page, 'dead-letters-discarded');
    ok(`dead letters: the discard refused to the operate key ("${refusedDiscard}"), done with the admin key; ${dstatus} in the store`);

    // -- a record's history.
    await page.click('nav a[data-page="audit"]');
    await page.waitForSelector('#a-key');
    await page.type('#a-key', `${cp[0]}|${ROLL_YEAR}`);
    await page.type('#a-pair', PAIR);
    await page.keyboard.press('Enter');
    await waitText(page, '.audit-entry h2', /resolve/, 'the resolve in the audit trail');
    const change = await page.$$eval('.audit-entry table.changes tr', (rows) => rows.map((r) => r.textContent).join(' | '));
    if (!/zoningZ-CAMAZ-PACS/.test(change)) fail(`the resolve's before and after: ${change}`);
    await visit(page, 'audit');
    ok('audit: the record\'s history with the resolve\'s before and after (zoning Z-CAMA -> Z-PACS)');

    // -- a read key, by the keyboard alone: skip link, sign in, Tab to the start button,
    // Enter, and the refusal names the role.
    await page.click('#signout');
    await page.waitForSelector('#key');
    await page.goto(`${base}/ui/#/runs`);
    await page.waitForSelector('#key');
    await page.keyboard.type(KEYS.read); // the sign-in focuses the key field itself
    await page.keyboard.press('Enter');
    await page.waitForSelector(`${panel} .start-full`);
    await until('focus on the page after sign-in', 5000, () => page.evaluate(() => document.activeElement && document.activeElement.id === 'main'));
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
        await page.keyboard.press('Tab');
        reached = await page.evaluate((p) => document.activeElement === document.querySelector(`${p} .start-full`), panel);
    }
    if (!reached) fail('Tab never reached the start button');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    if (outline === 'none') fail('the focused button shows no focus outline');
    await page.keyboard.press('Enter');
    await waitText(page, `${panel} .start-msg .notice.error`, /role.*operate/, 'the read key refused');
    const refusal = await text(page, `${panel} .start-msg .notice.error`);
    await shot(page, 'runs-read-key-refused');
    await page.reload();
    await page.waitForSelector(`${panel} .start-full`);
    await page.keyboard.press('Tab');
    if (!(await page.evaluate(() => document.activeElement.id === 'skip'))) fail('the first Tab stop is not the skip link');
    await page.keyboard.press('Enter');
    if (!(await page.evaluate(() => document.activeElement.id === 'main'))) fail('the skip link did not move the focus to the content');
    ok(`keyboard alone: sign-in, Tab to "Start full run", Enter; refused: ${refusal.trim()}; the skip link moves focus to the content`);

    // -- the daemon stopped: a banner; started again: it goes.
    await d.stop();
    await waitText(page, '#banner', /not answering/, 'the banner while the daemon is stopped', 15000);
    await shot(page, 'daemon-down');
    const banner = await text(page, '#banner');
    d = await startDaemon({ ...cfg, listen: { ...cfg.listen, port: Number(new URL(base).port) } }, 'tfsyncd-again');
    await page.waitForFunction(() => document.getElementById('banner').hidden, { timeout: 15000, polling: 50 })
        .catch(() => fail('the banner stayed once the daemon answered again'));
    ok(`unreachable: "${banner}" while stopped, gone when it answered again`);
    await d.stop();

    // -- TLS: the daemon's certificate configuration, the console over https.
    const key = path.join(work, 'tls.key'), cert = path.join(work, 'tls.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
        '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    d = await startDaemon({ ...cfg, listen: { ...cfg.listen, tls_cert_file: cert, tls_key_file: key } }, 'tfsyncd-tls');
    // This browser alone trusts the test's self-signed certificate.
    const tls = await launch({ acceptInsecureCerts: true });
    const https = `https://127.0.0.1:${d.port}`;
    await signIn(tls, https, KEYS.read);
    await waitText(tls, `${panel} .run-state`, /partial|succeeded/, 'the runs over TLS');
    const proto = await tls.evaluate(() => location.protocol);
    if (proto !== 'https:') fail(`over TLS the page is ${proto}`);
    await shot(tls, 'runs-tls');
    ok(`tls: the console at ${https}/ui/ signs in and shows the runs`);
    await d.stop();

    if (pageProblems.length) fail(`the pages reported:\n  ${pageProblems.join('\n  ')}`);
    ok('no Content-Security-Policy violation and no uncaught error in any page');
    say(`screenshots in ${shots}; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

await run(main, {
    closeFirst: async () => { for (const b of browsers) await b.close().catch(() => {}); },
    done: () => console.log(`${passed} passed, ${process.exitCode ? 1 : 0} failed`),
});
