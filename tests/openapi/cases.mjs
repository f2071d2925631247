// tests/openapi/cases.mjs — the conformance test's cases: per operation of
// docs/openapi.yaml ("METHOD /path" as the spec writes it), the requests sent through
// Prism and the status each must get. conformance.mjs fails when an operation of the spec
// has no entry here, so a new route needs one: add `'GET /metrics': [{name: 'ok', status:
// 200}]` and it is sent, validated and counted.
//
// A case: `name`; `key` (read, the default, operate, admin, bad: a key nobody configured,
// none: no Authorization header); `path` (default the operation's; a function of ctx for
// ids); `body` (JSON) or `raw` (text as it is, for a malformed one); `status`, the answer
// it must get; `invalid: true` when the request is outside the spec on purpose (Prism's
// validating proxy must refuse it, then the daemon's answer is checked through a proxy
// that does not validate requests); `before(ctx)` and `after(ctx, res)` for the state the
// next cases need; `headers` (an object, or a function of ctx) adds request headers. HEAD cases are checked against the daemon directly (conformance.mjs
// says why); `sameLength` compares Content-Length with the GET's body where it is stable.
//
// Cases run in this order, one after the other; the state they share comes from
// `fixtures`: a pacs-to-cama run with dead letters and open conflicts, a held run and a
// run waiting for a system that is down.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const ROLL_YEAR = 2026;

// ---- the daemon's world -------------------------------------------------------------

export const fixtures = {
    async databases(ctx) {
        ctx.db = {
            pacs: await ctx.clone('tfs_tmpl_pacs300', 'pacs'),
            cama: await ctx.clone('tfs_tmpl_cama', 'cama'),
            pacsHeld: await ctx.clone('tfs_tmpl_pacs300', 'pacsh'),
            camaHeld: await ctx.clone('tfs_tmpl_cama', 'camah'),
            state: await ctx.clone('tfs_tmpl_state', 'state'),
        };
        // Two properties assessed above their appraised total: the shipped rules refuse
        // them, so the first run has dead letters.
        ctx.psql(ctx.db.pacs, `UPDATE property_val SET assessed_val = coalesce(land_hstd_val, 0) +
            coalesce(land_non_hstd_val, 0) + coalesce(ag_use_val, 0) + coalesce(imprv_hstd_val, 0) +
            coalesce(imprv_non_hstd_val, 0) + 5000
            WHERE prop_val_yr = ${ROLL_YEAR} AND prop_id IN (SELECT prop_id FROM property ORDER BY prop_id LIMIT 2)`);
    },

    async runs(ctx) {
        // pacs-to-cama: a partial full run (two dead letters), then two parcels edited on
        // both sides and an incremental run that parks them as conflicts (policy manual).
        ctx.run = await runToEnd(ctx, 'full', 'pacs-to-cama', ['partial']);
        const dl = await get(ctx, '/dead-letters?pair=pacs-to-cama');
        ctx.deadLetters = dl.dead_letters.map((d) => d.id);
        if (ctx.deadLetters.length !== 2) throw new Error(`want 2 dead letters, got ${JSON.stringify(dl)}`);
        ctx.parcels = ctx.psql(ctx.db.cama, `SELECT parid FROM pardat WHERE taxyr = ${ROLL_YEAR} ORDER BY parid LIMIT 2`).split('\n');
        const list = ctx.parcels.map((p) => `'${p}'`).join(',');
        ctx.psql(ctx.db.cama, `UPDATE pardat SET zoning = 'Z-CAMA', wen = now(), who = 'appraiser' WHERE parid IN (${list})`);
        ctx.psql(ctx.db.pacs, `UPDATE property SET zoning = 'Z-PACS' WHERE simple_geo_id IN (${list})`);
        await runToEnd(ctx, 'incremental', 'pacs-to-cama', ['partial']);
        const cf = await get(ctx, '/sync/conflicts?pair=pacs-to-cama&status=open');
        ctx.conflicts = cf.conflicts.map((c) => c.id);
        if (ctx.conflicts.length !== 2) throw new Error(`want 2 conflicts, got ${JSON.stringify(cf)}`);
        // held: a full run that would delete a fifth of the keys stops held.
        await runToEnd(ctx, 'full', 'held', ['succeeded']);
        ctx.held = await holdRun(ctx, 5);
        // pacs-to-down: its target never answers, so its run waits (and keeps its pair).
        ctx.waiting = await startRun(ctx, 'full', 'pacs-to-down');
        await waitRun(ctx, ctx.waiting, ['waiting']);
    },
};

export function writeConfig(ctx) {
    const key = (name, role, k) => ({ name, role, sha256: sha256(k) });
    const rules = JSON.parse(fs.readFileSync(path.join(ctx.source, 'transforms', 'pacs_to_cama.rules.json'), 'utf8'));
    const entities = [{ source: 'property', targets: ['pardat', 'asmt'], script: 'pacs_to_cama.lua' }];
    const cfg = {
        listen: { address: '127.0.0.1', port: 0, ready_file: 'tfsyncd.ready' },
        state: { conninfo: ctx.conninfo(ctx.db.state) },
        plugin_dir: ctx.pluginDir,
        transform_dir: path.join(ctx.source, 'transforms'),
        roll_year: ROLL_YEAR,
        workers: 2,
        breaker: { failures: 1 },
        // Only this daemon changes its store: its answers then change only when it does,
        // so an ETag read before a case is still the answer's in the case.
        api: { status_refresh: '1h' },
        api_keys: [key('reader', 'read', 'read-key'), key('operator', 'operate', 'operate-key'),
            key('admin', 'admin', 'admin-key')],
        systems: {
            pacs: { plugin: 'pacs', settings: { conninfo: ctx.conninfo(ctx.db.pacs) } },
            cama: { plugin: 'cama', settings: { conninfo: ctx.conninfo(ctx.db.cama) } },
            pacs_held: { plugin: 'pacs', settings: { conninfo: ctx.conninfo(ctx.db.pacsHeld) } },
            cama_held: { plugin: 'cama', settings: { conninfo: ctx.conninfo(ctx.db.camaHeld) } },
            // Nothing listens on port 1 of the loopback: refused at once, never a wait.
            down: { plugin: 'cama', settings: { conninfo: 'host=127.0.0.1 port=1 dbname=cama', connect_timeout: 1 } },
        },
        pairs: [
            { name: 'pacs-to-cama', source: 'pacs', target: 'cama', entities, rules, conflicts: { policy: 'manual' } },
            { name: 'held', source: 'pacs_held', target: 'cama_held', entities },
            { name: 'pacs-to-down', source: 'pacs', target: 'down', entities },
        ],
    };
    fs.writeFileSync(ctx.configPath, JSON.stringify(cfg, null, 2));
    ctx.config = cfg;
}

function sha256(text) {
    return crypto.createHash('sha256').update(text).digest('hex');
}

// The status answers say how old the state they show is (docs/openapi.yaml's AsOf).
function hasAsOf(ctx, res) {
    if (typeof res.json?.as_of !== 'string' || Number.isNaN(Date.parse(res.json.as_of)))
        throw new Error(`no as_of time: ${res.text.slice(0, 200)}`);
}

// A before(ctx) that keeps the ETag of GET path(ctx) in ctx.etag.
function etagOf(path) {
    return async (ctx) => {
        const r = await ctx.api('GET', path(ctx), undefined, 'read');
        if (r.status !== 200 || !r.headers.etag) throw new Error(`GET ${path(ctx)}: ${r.status}, ETag ${r.headers.etag}`);
        ctx.etag = r.headers.etag;
    };
}

async function get(ctx, p) {
    const r = await ctx.api('GET', p, undefined, 'read');
    if (r.status !== 200) throw new Error(`GET ${p}: ${r.status} ${r.text}`);
    return r.json;
}

async function startRun(ctx, mode, pair) {
    const r = await ctx.api('POST', `/sync/${mode}`, { pair });
    if (r.status !== 202) throw new Error(`POST /sync/${mode} ${pair}: ${r.status} ${r.text}`);
    return r.json.run_id;
}

async function waitRun(ctx, id, states) {
    return ctx.until(`run ${id} ${states.join(' or ')}`, 60000, async () => {
        const run = await get(ctx, `/sync/status/${id}`);
        if (states.includes(run.state)) return run;
        if (['succeeded', 'partial', 'failed', 'cancelled', 'held'].includes(run.state))
            throw new Error(`run ${id} ended ${run.state}, want ${states.join(' or ')}: ${JSON.stringify(run)}`);
        return null;
    });
}

async function runToEnd(ctx, mode, pair, states) {
    const id = await startRun(ctx, mode, pair);
    await waitRun(ctx, id, states);
    return id;
}

// Retires every n-th property still active in the held pair's PACS and runs it full:
// the sweep would delete more than max_delete_ratio of the keys, so the run is held.
async function holdRun(ctx, n) {
    ctx.psql(ctx.db.pacsHeld, `UPDATE property_val SET prop_inactive_dt = '${ROLL_YEAR}-06-01'
        WHERE prop_val_yr = ${ROLL_YEAR} AND prop_inactive_dt IS NULL AND prop_id % ${n} = 0`);
    const id = await startRun(ctx, 'full', 'held');
    const run = await waitRun(ctx, id, ['held']);
    ctx.heldDeletes = Object.values(run.held.deletes).reduce((a, b) => a + b, 0);
    return id;
}

const BIG = 'x'.repeat(1100000);
// A PACS property as a caller would type it for a transform test.
const RECORD = { prop_id: 10042, prop_val_yr: ROLL_YEAR, simple_geo_id: 'R10042', situs_num: '12', situs_street: 'MAIN' };

// ---- the cases ------------------------------------------------------------------------

const noKey = (status = 401) => ({ name: 'no key', key: 'none', status, invalid: true });
const badKey = { name: 'a key nobody configured', key: 'bad', status: 401 };

export const cases = {
    'GET /health': [
        { name: 'no key: states only', key: 'none', status: 200 },
        { name: 'with a key: errors and plugins too (one system down)', status: 200 },
    ],
    'HEAD /health': [{ name: 'no key', key: 'none', status: 200 }],
    'GET /metrics': [
        { name: 'the metrics, with a read key', status: 200 },
        { name: 'no key (metrics.public is not set)', key: 'none', status: 401 },
        badKey,
    ],
    'HEAD /metrics': [
        { name: 'the metrics', status: 200 },
        { name: 'no key', key: 'none', status: 401 },
    ],

    'GET /sync/status': [
        { name: 'every pair (with as_of, from memory)', status: 200, after: hasAsOf },
        // Its ETag moves with every refresh and health change: * matches whichever it is.
        { name: 'If-None-Match *', headers: { 'if-none-match': '*' }, status: 304 },
        noKey(),
        badKey,
    ],
    // (A 401's detail names the method, so its length is not the GET's.)
    'HEAD /sync/status': [{ name: 'every pair', status: 200 }, { name: 'no key', key: 'none', status: 401 }],

    'GET /sync/status/{run_id}': [
        { name: 'a partial run', path: (c) => `/sync/status/${c.run}`, status: 200, after: hasAsOf },
        { name: 'unchanged (If-None-Match its ETag)', path: (c) => `/sync/status/${c.run}`,
            before: etagOf((c) => `/sync/status/${c.run}`), headers: (c) => ({ 'if-none-match': c.etag }), status: 304 },
        { name: 'a held run', path: (c) => `/sync/status/${c.held}`, status: 200 },
        { name: 'a waiting run', path: (c) => `/sync/status/${c.waiting}`, status: 200 },
        { name: 'unknown run', path: '/sync/status/999999', status: 404 },
        { name: 'not a run id', path: '/sync/status/abc', status: 400, invalid: true },
        noKey(),
    ],
    'HEAD /sync/status/{run_id}': [
        { name: 'a run', path: (c) => `/sync/status/${c.run}`, status: 200, sameLength: true },
        { name: 'unknown run', path: '/sync/status/999999', status: 404, sameLength: true },
        { name: 'not a run id', path: '/sync/status/abc', status: 400, sameLength: true },
        { ...{ name: 'no key', key: 'none', status: 401 }, path: '/sync/status/1' },
    ],

    'GET /pairs': [{ name: 'the pairs', status: 200 }, badKey,
        { name: 'unchanged (If-None-Match its ETag)', before: etagOf(() => '/pairs'),
            headers: (c) => ({ 'if-none-match': c.etag }), status: 304 }],
    'HEAD /pairs': [{ name: 'the pairs', status: 200, sameLength: true }, { name: 'no key', key: 'none', status: 401 }],

    'GET /plugins': [{ name: 'loaded and refused', status: 200 }, noKey(),
        { name: 'unchanged (If-None-Match its ETag)', before: etagOf(() => '/plugins'),
            headers: (c) => ({ 'if-none-match': c.etag }), status: 304 }],
    'HEAD /plugins': [{ name: 'loaded and refused', status: 200, sameLength: true }, { name: 'no key', key: 'none', status: 401 }],

    'GET /dead-letters': [
        { name: 'a pair\'s', path: '/dead-letters?pair=pacs-to-cama', status: 200 },
        { name: 'one page of one', path: '/dead-letters?pair=pacs-to-cama&stage=validate&status=open&limit=1', status: 200 },
        { name: 'limit out of range', path: '/dead-letters?limit=5000', status: 400, invalid: true },
        { name: 'unknown stage', path: '/dead-letters?stage=nope', status: 400, invalid: true },
        noKey(),
    ],
    'HEAD /dead-letters': [
        { name: 'a pair\'s', path: '/dead-letters?pair=pacs-to-cama', status: 200, sameLength: true },
        { name: 'limit out of range', path: '/dead-letters?limit=5000', status: 400, sameLength: true },
        { name: 'no key', key: 'none', status: 401 },
    ],

    'GET /dead-letters/{id}': [
        { name: 'one', path: (c) => `/dead-letters/${c.deadLetters[0]}`, status: 200 },
        { name: 'unknown', path: '/dead-letters/999999', status: 404 },
        { name: 'not an id', path: '/dead-letters/abc', status: 400, invalid: true },
        noKey(),
    ],
    'HEAD /dead-letters/{id}': [
        { name: 'one', path: (c) => `/dead-letters/${c.deadLetters[0]}`, status: 200, sameLength: true },
        { name: 'unknown', path: '/dead-letters/999999', status: 404, sameLength: true },
        { name: 'not an id', path: '/dead-letters/abc', status: 400, sameLength: true },
        { ...{ name: 'no key', key: 'none', status: 401 }, path: '/dead-letters/1' },
    ],

    'GET /audit': [
        { name: 'a page', path: '/audit?pair=pacs-to-cama&limit=3', status: 200 },
        { name: 'by key and time', path: (c) => `/audit?pair=pacs-to-cama&entity=property&run_id=${c.run}&since=2020-01-01T00:00:00Z&until=2100-01-01`, status: 200 },
        { name: 'since not a time', path: '/audit?since=yesterday', status: 400, invalid: true },
        { name: 'limit 0', path: '/audit?limit=0', status: 400, invalid: true },
        noKey(),
    ],
    'HEAD /audit': [
        { name: 'a page', path: '/audit?pair=pacs-to-cama&limit=3', status: 200, sameLength: true },
        { name: 'since not a time', path: '/audit?since=yesterday', status: 400, sameLength: true },
        { name: 'no key', key: 'none', status: 401 },
    ],

    'GET /audit/verify': [
        { name: 'every pair', status: 200 },
        { name: 'one pair', path: '/audit/verify?pair=pacs-to-cama', status: 200 },
        { name: 'not a pair name', path: '/audit/verify?pair=Not%20A%20Pair', status: 400, invalid: true },
        noKey(),
    ],
    'HEAD /audit/verify': [
        { name: 'one pair', path: '/audit/verify?pair=pacs-to-cama', status: 200, sameLength: true },
        { name: 'not a pair name', path: '/audit/verify?pair=Not%20A%20Pair', status: 400, sameLength: true },
        { name: 'no key', key: 'none', status: 401 },
    ],

    'GET /sync/conflicts': [
        { name: 'open ones', path: '/sync/conflicts?pair=pacs-to-cama&entity=property&status=open&limit=1', status: 200 },
        { name: 'unknown status', path: '/sync/conflicts?status=nope', status: 400, invalid: true },
        noKey(),
    ],
    'HEAD /sync/conflicts': [
        { name: 'open ones', path: '/sync/conflicts?status=open', status: 200, sameLength: true },
        { name: 'unknown status', path: '/sync/conflicts?status=nope', status: 400, sameLength: true },
        { name: 'no key', key: 'none', status: 401 },
    ],

    'GET /sync/conflicts/{id}': [
        { name: 'one', path: (c) => `/sync/conflicts/${c.conflicts[0]}`, status: 200 },
        { name: 'unknown', path: '/sync/conflicts/999999', status: 404 },
        { name: 'not an id', path: '/sync/conflicts/abc', status: 400, invalid: true },
        noKey(),
    ],
    'HEAD /sync/conflicts/{id}': [
        { name: 'one', path: (c) => `/sync/conflicts/${c.conflicts[0]}`, status: 200, sameLength: true },
        { name: 'unknown', path: '/sync/conflicts/999999', status: 404, sameLength: true },
        { name: 'not an id', path: '/sync/conflicts/abc', status: 400, sameLength: true },
        { ...{ name: 'no key', key: 'none', status: 401 }, path: '/sync/conflicts/1' },
    ],

    'POST /sync/validate': [
        { name: 'a sample', key: 'operate', body: { pair: 'pacs-to-cama', sample: 5 }, status: 200 },
        { name: 'unknown pair', key: 'operate', body: { pair: 'nope' }, status: 404 },
        { name: 'pair busy', key: 'operate', body: { pair: 'pacs-to-down' }, status: 409 },
        { name: 'sample out of range', key: 'operate', body: { pair: 'pacs-to-cama', sample: 0 }, status: 400, invalid: true },
        { name: 'role read', body: { pair: 'pacs-to-cama' }, status: 403 },
        noKey(),
    ],

    'POST /transforms/{name}/test': [
        {
            name: 'records through the script', key: 'operate', path: '/transforms/pacs_to_cama.lua/test',
            body: { pair: 'pacs-to-cama', entity: 'property', records: [RECORD] }, status: 200 },
        { name: 'an unsaved edit that fails', key: 'operate', path: '/transforms/pacs_to_cama.lua/test',
            body: { records: [RECORD], source: 'function map(r) error("no") end' }, status: 200 },
        { name: 'unknown script', key: 'operate', path: '/transforms/nope.lua/test', body: { records: [{}] }, status: 404 },
        { name: 'pair busy', key: 'operate', path: '/transforms/pacs_to_cama.lua/test',
            body: { pair: 'pacs-to-down', records: [{}] }, status: 409 },
        { name: 'no records', key: 'operate', path: '/transforms/pacs_to_cama.lua/test', body: { records: [] }, status: 400, invalid: true },
        { name: 'role read', path: '/transforms/pacs_to_cama.lua/test', body: { records: [RECORD] }, status: 403 },
        noKey(),
    ],

    'POST /dead-letters/replay': [
        { name: 'a pair\'s open ones', key: 'operate', body: { pair: 'pacs-to-cama', stage: 'validate' }, status: 200,
            after: async (c) => {
                const dl = await get(c, '/dead-letters?pair=pacs-to-cama&status=open');
                c.openDeadLetters = dl.dead_letters.map((d) => d.id);
            } },
        { name: 'unknown pair', key: 'operate', body: { pair: 'nope' }, status: 404 },
        { name: 'pair busy', key: 'operate', body: { pair: 'pacs-to-down' }, status: 409 },
        { name: 'unknown field', key: 'operate', body: { pair: 'pacs-to-cama', nope: 1 }, status: 400, invalid: true },
        { name: 'role read', body: { pair: 'pacs-to-cama' }, status: 403 },
        noKey(),
    ],
    'DELETE /dead-letters/{id}': [
        { name: 'role operate', key: 'operate', path: (c) => `/dead-letters/${c.openDeadLetters[0]}`, status: 403 },
        { name: 'discarded', key: 'admin', path: (c) => `/dead-letters/${c.openDeadLetters[0]}`, status: 200 },
        { name: 'already closed', key: 'admin', path: (c) => `/dead-letters/${c.openDeadLetters[0]}`, status: 409 },
        { name: 'unknown', key: 'admin', path: '/dead-letters/999999', status: 404 },
        { name: 'not an id', key: 'admin', path: '/dead-letters/abc', status: 400, invalid: true },
        noKey(),
    ],
    'POST /dead-letters/{id}/replay': [
        { name: 'replayed, fails again', key: 'operate', path: (c) => `/dead-letters/${c.openDeadLetters[1]}/replay`, status: 200 },
        { name: 'discarded: closed', key: 'operate', path: (c) => `/dead-letters/${c.openDeadLetters[0]}/replay`, status: 409 },
        { name: 'unknown', key: 'operate', path: '/dead-letters/999999/replay', status: 404 },
        { name: 'not an id', key: 'operate', path: '/dead-letters/abc/replay', status: 400, invalid: true },
        { name: 'role read', path: (c) => `/dead-letters/${c.openDeadLetters[1]}/replay`, status: 403 },
        noKey(),
    ],

    'POST /sync/conflicts/{id}/resolve': [
        { name: 'a record that does not fit', key: 'operate', path: (c) => `/sync/conflicts/${c.conflicts[0]}/resolve`,
            body: { record: { pardat: [{ nope: 1 }] } }, status: 422 },
        { name: 'target kept', key: 'operate', path: (c) => `/sync/conflicts/${c.conflicts[0]}/resolve`,
            body: { choose: 'target' }, status: 200 },
        { name: 'not open any more', key: 'operate', path: (c) => `/sync/conflicts/${c.conflicts[0]}/resolve`,
            body: { choose: 'source' }, status: 409 },
        { name: 'target changed since', key: 'operate', path: (c) => `/sync/conflicts/${c.conflicts[1]}/resolve`,
            body: { choose: 'source' }, status: 409,
            before: async (c) => {
                const cf = await get(c, `/sync/conflicts/${c.conflicts[1]}`);
                const parid = cf.target.pardat[0].parid;
                c.psql(c.db.cama, `UPDATE pardat SET zoning = 'Z-AGAIN', wen = now() WHERE parid = '${parid}'`);
            } },
        { name: 'unknown', key: 'operate', path: '/sync/conflicts/999999/resolve', body: { choose: 'source' }, status: 404 },
        { name: 'role read', path: (c) => `/sync/conflicts/${c.conflicts[1]}/resolve`, body: { choose: 'source' }, status: 403 },
        { name: 'neither choice nor record', key: 'operate', path: (c) => `/sync/conflicts/${c.conflicts[1]}/resolve`,
            body: {}, status: 400, invalid: true },
        { name: 'unknown choice', key: 'operate', path: (c) => `/sync/conflicts/${c.conflicts[1]}/resolve`,
            body: { choose: 'both' }, status: 400, invalid: true },
        noKey(),
    ],

    'POST /sync/full': [
        { name: 'role read', body: { pair: 'pacs-to-cama' }, status: 403 },
        { ...noKey(), body: { pair: 'pacs-to-cama' } },
        { ...badKey, body: { pair: 'pacs-to-cama' } },
        { name: 'unknown pair', key: 'operate', body: { pair: 'nope' }, status: 404 },
        { name: 'the pair waits for its target', key: 'operate', body: { pair: 'pacs-to-down' }, status: 409 },
        { name: 'the pair is held', key: 'operate', body: { pair: 'held' }, status: 409 },
        { name: 'unknown field', key: 'operate', body: { pair: 'pacs-to-cama', mode: 'x' }, status: 400, invalid: true },
        { name: 'pair not a string', key: 'operate', body: { pair: 7 }, status: 400, invalid: true },
        { name: 'malformed JSON', key: 'operate', raw: '{"pair": ', status: 400, invalid: true },
        { name: 'a key twice', key: 'operate', raw: '{"pair": "pacs-to-cama", "pair": "held"}', status: 400, invalid: true },
        { name: 'body over the limit', key: 'operate', raw: `{"pair": "${BIG}"}`, status: 413, invalid: true },
        { name: 'started', key: 'operate', body: { pair: 'pacs-to-cama' }, status: 202,
            after: (c, res) => waitRun(c, res.json.run_id, ['succeeded', 'partial']) },
    ],
    'POST /sync/incremental': [
        { name: 'started', key: 'operate', body: { pair: 'pacs-to-cama' }, status: 202,
            after: (c, res) => waitRun(c, res.json.run_id, ['succeeded', 'partial']) },
        { name: 'unknown pair', key: 'operate', body: { pair: 'nope' }, status: 404 },
        { name: 'the pair waits for its target', key: 'operate', body: { pair: 'pacs-to-down' }, status: 409 },
        { name: 'no pair', key: 'operate', body: {}, status: 400, invalid: true },
        { name: 'role read', body: { pair: 'pacs-to-cama' }, status: 403 },
        noKey(),
    ],

    'POST /sync/runs/{run_id}/confirm': [
        { name: 'wrong count', key: 'operate', path: (c) => `/sync/runs/${c.held}/confirm`,
            body: (c) => ({ deletes: c.heldDeletes + 1 }), status: 409 },
        { name: 'not held', key: 'operate', path: (c) => `/sync/runs/${c.run}/confirm`, body: { deletes: 1 }, status: 409 },
        { name: 'unknown run', key: 'operate', path: '/sync/runs/999999/confirm', body: { deletes: 1 }, status: 404 },
        { name: 'negative count', key: 'operate', path: (c) => `/sync/runs/${c.held}/confirm`, body: { deletes: -1 }, status: 400, invalid: true },
        { name: 'role read', path: (c) => `/sync/runs/${c.held}/confirm`, body: { deletes: 1 }, status: 403 },
        { name: 'confirmed', key: 'operate', path: (c) => `/sync/runs/${c.held}/confirm`,
            body: (c) => ({ deletes: c.heldDeletes }), status: 202,
            after: (c) => waitRun(c, c.held, ['succeeded']) },
        noKey(),
    ],
    'POST /sync/runs/{run_id}/cancel': [
        { name: 'a waiting run', key: 'operate', path: (c) => `/sync/runs/${c.waiting}/cancel`, status: 202,
            after: (c) => waitRun(c, c.waiting, ['cancelled']) },
        { name: 'a held run, at once', key: 'operate', path: (c) => `/sync/runs/${c.held2}/cancel`, status: 200,
            before: async (c) => { c.held2 = await holdRun(c, 3); } },
        { name: 'already ended', key: 'operate', path: (c) => `/sync/runs/${c.run}/cancel`, status: 409 },
        { name: 'unknown run', key: 'operate', path: '/sync/runs/999999/cancel', status: 404 },
        { name: 'not a run id', key: 'operate', path: '/sync/runs/abc/cancel', status: 400, invalid: true },
        { name: 'role read', path: (c) => `/sync/runs/${c.run}/cancel`, status: 403 },
        noKey(),
    ],

    'POST /admin/reload': [
        { name: 'role operate', key: 'operate', status: 403 },
        { name: 'the same config', key: 'admin', status: 200 },
        { name: 'a config that changes workers', key: 'admin', status: 400,
            before: (c) => fs.writeFileSync(c.configPath, JSON.stringify({ ...c.config, workers: 3 })),
            after: (c) => fs.writeFileSync(c.configPath, JSON.stringify(c.config)) },
        badKey,
    ],
};
