// tests/openapi/conformance.mjs — proves docs/openapi.yaml against the daemon as built.
//
// Starts a real tfsyncd (the real PACS and CAMA plugins, databases cloned from the
// templates scripts/test.sh seeds on its PostgreSQL), puts Prism's validating proxy
// (`prism proxy --errors`) in front of it, and sends every case of cases.mjs through it:
// any violation Prism finds in an answer (status, headers, body against its schema) turns
// into Prism's own error, and the `sl-violations` header is checked as well; so is every
// member of a JSON answer, which the spec must name (Prism lets an unnamed one pass). The table of
// cases must hold every operation (path and method) of the spec, so a route added to the
// spec without a case fails here.
//
// A case whose request is outside the spec on purpose (no key, a malformed body, a query
// out of range) is sent twice: to the validating proxy, which must refuse it itself (so
// the spec is as strict as the daemon), and to a second proxy that does not validate
// requests (`--validate-request false`, still `--errors`), whose answer from the daemon
// must conform. HEAD cases go to the daemon directly: Prism's proxy parses the body of a
// JSON answer and fails on a HEAD's, which has none; the driver checks a HEAD's status,
// headers and empty body against the spec's HEAD operation and the GET's answer itself.
//
// Usage (tests/CMakeLists.txt registers it):
//   node conformance.mjs --source DIR --build DIR --plugin-dir DIR --tools DIR
// PostgreSQL from TFS_TEST_PGHOST/PORT/USER (or PGHOST/PORT/USER), as the C tests find it.
// TFS_TEST_KEEP=1 keeps the folder with the config and the logs.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';

import { harness } from '../tools/harness.mjs';
import { cases, fixtures, writeConfig } from './cases.mjs';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
for (const a of ['source', 'build', 'plugin-dir', 'tools'])
    if (!args[a]) {
        console.error(`openapi conformance: missing --${a}; usage: node conformance.mjs --source DIR --build DIR --plugin-dir DIR --tools DIR`);
        process.exit(1);
    }

const spec = path.join(args.source, 'docs', 'openapi.yaml');
const { work, fail, say, psql, conninfo, clone, start, logTail, until, startDaemon, run } =
    harness({ tag: 'openapi', name: 'openapi conformance', build: args.build });

// ---- HTTP -------------------------------------------------------------------------------

// One request; the answer's status, headers and body (text, and JSON when it parses).
function send(base, { method, path: p, headers = {}, body }) {
    const url = new URL(p, base);
    return new Promise((resolve, reject) => {
        const req = http.request(url, { method, headers: { ...headers, connection: 'close' } }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                const text = Buffer.concat(chunks).toString('utf8');
                let json;
                try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
                resolve({ status: res.statusCode, headers: res.headers, text, json });
            });
        });
        req.on('error', reject);
        req.setTimeout(30000, () => req.destroy(new Error(`${method} ${p}: no answer within 30 s`)));
        if (body !== undefined) req.write(body);
        req.end();
    });
}

const KEYS = { read: 'read-key', operate: 'operate-key', admin: 'admin-key', bad: 'not-a-configured-key' };

function requestOf(c, ctx, opPath, method) {
    const p = typeof c.path === 'function' ? c.path(ctx) : (c.path || opPath);
    const headers = {};
    const key = c.key === undefined ? 'read' : c.key;
    if (key !== 'none') headers.authorization = `Bearer ${KEYS[key] || key}`;
    Object.assign(headers, typeof c.headers === 'function' ? c.headers(ctx) : c.headers || {});
    let body;
    if (c.raw !== undefined) {
        // Sent as text: Prism would re-encode JSON it parsed (and could not parse a malformed one).
        body = typeof c.raw === 'function' ? c.raw(ctx) : c.raw;
        headers['content-type'] = 'text/plain';
    } else if (c.body !== undefined) {
        body = JSON.stringify(typeof c.body === 'function' ? c.body(ctx) : c.body);
        headers['content-type'] = 'application/json';
    }
    return { method, path: p, headers, body };
}

// ---- processes --------------------------------------------------------------------------

// Prism on a port of its own choosing (-p 0), ready when it says where it listens.
async function startPrism(name, upstream, extra) {
    const bin = path.join(args.tools, 'prism');
    const p = start(bin, ['proxy', '--errors', '--cors', 'false', '-h', '127.0.0.1', '-p', '0', ...extra, spec, upstream],
        `${name}.log`);
    const base = await new Promise((resolve) => {
        const rl = readline.createInterface({ input: p.stdout });
        rl.on('line', (l) => {
            const m = /listening on (http:\/\/127\.0\.0\.1:[0-9]+)/.exec(l);
            if (m) resolve(m[1]);
        });
        p.exited.then((how) => { if (!p.base) say(`${name} ended before it listened: ${how}`); resolve(null); });
        setTimeout(() => resolve(null), 60000).unref();
    });
    if (!base) fail(`${name} did not start listening:\n${logTail(`${name}.log`)}`);
    p.base = base;
    return p;
}

// ---- the spec's operations --------------------------------------------------------------

// The spec as JSON through the pinned redocly (no YAML parser of our own), its refs kept.
function loadSpec() {
    const out = path.join(work, 'openapi.json');
    try {
        execFileSync(path.join(args.tools, 'redocly'), ['bundle', spec, '--output', out, '--ext', 'json'],
            { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
        fail(`redocly bundle ${spec} failed: ${e.stderr || e.message}`);
    }
    return JSON.parse(fs.readFileSync(out, 'utf8'));
}

const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options'];

function operations(doc) {
    const ops = new Map();
    for (const [p, item] of Object.entries(doc.paths))
        for (const m of METHODS)
            if (item[m]) ops.set(`${m.toUpperCase()} ${p}`, { path: p, method: m.toUpperCase(), op: item[m] });
    return ops;
}

function deref(doc, x) {
    while (x && x.$ref) x = x.$ref.slice(2).split('/').reduce((o, k) => o[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
    return x;
}

// ---- checks -----------------------------------------------------------------------------

// The members of value its schema does not name, as JSON paths, into out: Prism passes a
// member the spec never mentions unless the schema closes the object, so an answer could
// grow fields the spec does not describe. Follows $ref, allOf, oneOf/anyOf (the branches
// of the value's type), properties, additionalProperties and items.
function undocumented(doc, schema, value, where, out) {
    schema = deref(doc, schema);
    if (!schema || typeof schema !== 'object' || value === null || typeof value !== 'object') return;
    const branches = [schema];
    for (const k of ['allOf', 'oneOf', 'anyOf'])
        for (const b of schema[k] || []) {
            const d = deref(doc, b);
            const t = d && (d.type || (d.properties ? 'object' : d.items ? 'array' : undefined));
            const types = Array.isArray(t) ? t : [t];
            if (k === 'allOf' || t === undefined || types.includes(Array.isArray(value) ? 'array' : 'object'))
                branches.push(...flatten(doc, d));
        }
    if (Array.isArray(value)) {
        const items = branches.map((b) => b.items).filter(Boolean);
        value.slice(0, 3).forEach((v, i) => items.forEach((it) => undocumented(doc, it, v, `${where}[${i}]`, out)));
        return;
    }
    const props = {};
    let extra;
    let open = true;
    for (const b of branches) {
        Object.assign(props, b.properties || {});
        if (b.additionalProperties !== undefined) {
            if (typeof b.additionalProperties === 'object') extra = b.additionalProperties;
            else open = open && b.additionalProperties;
        }
        if (b.patternProperties || b.propertyNames) extra = extra || {};
    }
    const named = Object.keys(props).length > 0;
    for (const [k, v] of Object.entries(value)) {
        if (props[k]) undocumented(doc, props[k], v, `${where}.${k}`, out);
        else if (extra) undocumented(doc, extra, v, `${where}.${k}`, out);
        else if (named && open) out.add(`${where}.${k}`);
    }
}

function flatten(doc, s) {
    s = deref(doc, s);
    if (!s) return [];
    return [s, ...(s.allOf || []).flatMap((x) => flatten(doc, x))];
}

// The undocumented members of an answer, against the schema of its status and type.
function undocumentedOf(doc, entry, res, out) {
    const r = deref(doc, entry.op.responses[String(res.status)]);
    const type = (res.headers['content-type'] || '').split(';')[0];
    const schema = r && r.content && r.content[type] && r.content[type].schema;
    if (schema && res.json !== undefined) undocumented(doc, schema, res.json, `${entry.method} ${entry.path} ${res.status}`, out);
}

const PRISM_PROBLEM = 'https://stoplight.io/prism/errors#';

function violations(res) {
    const v = res.headers['sl-violations'];
    if (!v) return null;
    try { return JSON.parse(v); } catch { return v; }
}

function show(res) {
    return `${res.status} ${res.text.slice(0, 600)}`;
}

// A request within the spec: through the validating proxy, conforming, with the status.
async function checkStrict(ctx, req, c) {
    const res = await send(ctx.strict.base, req);
    const problems = [];
    const v = violations(res);
    if (v) problems.push(`Prism reports violations: ${JSON.stringify(v)}`);
    if (res.json && typeof res.json.type === 'string' && res.json.type.startsWith(PRISM_PROBLEM))
        problems.push(`Prism answered itself: ${show(res)}`);
    if (res.status !== c.status) problems.push(`status ${res.status}, want ${c.status}: ${show(res)}`);
    return { res, problems };
}

// A request outside the spec on purpose: the validating proxy refuses it, and the daemon's
// answer, through the proxy that does not validate requests, conforms.
async function checkInvalid(ctx, req, c) {
    const problems = [];
    const refused = await send(ctx.strict.base, req);
    const t = refused.json && refused.json.type;
    if (!(typeof t === 'string' && t.startsWith(PRISM_PROBLEM) && (refused.status === 422 || refused.status === 401)))
        problems.push(`the spec accepts this request (Prism passed it on, ${show(refused)}); ` +
            'the case says the daemon refuses it: describe the refusal in the spec or fix the case');
    if (c.key === 'none') {
        // Prism checks the key even when it validates no request (the CLI has no switch
        // for it), so the daemon's answer is checked here: the same 401 problem the
        // "a key nobody configured" cases get through Prism, with its challenge.
        const res = await send(ctx.daemon.base, req);
        if (res.status !== c.status) problems.push(`status ${res.status}, want ${c.status}: ${show(res)}`);
        if (res.headers['content-type'] !== 'application/problem+json') problems.push(`Content-Type ${res.headers['content-type']}`);
        if (res.headers['www-authenticate'] !== 'Bearer') problems.push(`WWW-Authenticate ${res.headers['www-authenticate']}`);
        if (res.headers['cache-control'] !== 'no-store') problems.push(`Cache-Control ${res.headers['cache-control']}`);
        const j = res.json || {};
        if (!(j.type === 'https://terrafusion.dev/problems/unauthorized' && j.status === 401 && j.title && j.detail))
            problems.push(`not the unauthorized problem: ${show(res)}`);
        return { res, problems };
    }
    const res = await send(ctx.lenient.base, req);
    const v = violations(res);
    if (v) problems.push(`Prism reports violations of the answer: ${JSON.stringify(v)}`);
    if (res.json && typeof res.json.type === 'string' && res.json.type.startsWith(PRISM_PROBLEM))
        problems.push(`Prism answered itself: ${show(res)}`);
    if (res.status !== c.status) problems.push(`status ${res.status}, want ${c.status}: ${show(res)}`);
    return { res, problems };
}

// HEAD straight to the daemon: the GET's status and headers, no body, as the spec's HEAD
// operation documents them.
async function checkHead(ctx, req, c, entry) {
    const problems = [];
    const res = await send(ctx.daemon.base, req);
    const get = await send(ctx.daemon.base, { ...req, method: 'GET' });
    if (res.status !== c.status) problems.push(`status ${res.status}, want ${c.status}`);
    if (res.status !== get.status) problems.push(`status ${res.status}, the GET's ${get.status}`);
    if (res.text !== '') problems.push(`a body of ${res.text.length} bytes`);
    if (res.headers['content-type'] !== get.headers['content-type'])
        problems.push(`Content-Type ${res.headers['content-type']}, the GET's ${get.headers['content-type']}`);
    // A GET's body may differ from one request to the next (ages, uptime); its length is
    // compared where it cannot.
    if (c.sameLength && res.headers['content-length'] !== String(Buffer.byteLength(get.text)))
        problems.push(`Content-Length ${res.headers['content-length']}, the GET's body has ${Buffer.byteLength(get.text)} bytes`);
    const doc = deref(ctx.spec, entry.op.responses[String(res.status)]);
    if (!doc) {
        problems.push(`status ${res.status} is not documented for HEAD ${entry.path}`);
    } else {
        for (const [h, hv] of Object.entries(doc.headers || {})) {
            const schema = deref(ctx.spec, deref(ctx.spec, hv).schema) || {};
            const got = res.headers[h.toLowerCase()];
            if (got === undefined) problems.push(`no ${h} header, documented for ${res.status}`);
            else if (schema.const !== undefined && got !== schema.const) problems.push(`${h}: ${got}, documented ${schema.const}`);
        }
    }
    return { res, problems };
}

// ---- the run ----------------------------------------------------------------------------

async function main() {
    const doc = loadSpec();
    const ops = operations(doc);
    // Every operation of the spec has a case, and every case an operation.
    const missing = [...ops.keys()].filter((k) => !cases[k] || cases[k].length === 0);
    const stale = Object.keys(cases).filter((k) => !ops.has(k));
    if (missing.length) fail(`operations of docs/openapi.yaml without a case in tests/openapi/cases.mjs: ${missing.join(', ')}`);
    if (stale.length) fail(`cases for operations docs/openapi.yaml does not have: ${stale.join(', ')}`);

    const ctx = { spec: doc, psql, conninfo, clone, work, source: args.source, pluginDir: args['plugin-dir'], until };
    await fixtures.databases(ctx);
    ctx.configPath = path.join(work, 'tfsyncd.json');
    writeConfig(ctx);
    ctx.daemon = await startDaemon(ctx.configPath, path.join(work, 'tfsyncd.ready'));
    ctx.api = (method, p, body, key = 'operate') => send(ctx.daemon.base, requestOf({ body, key, path: p }, ctx, p, method));
    ctx.strict = await startPrism('prism', ctx.daemon.base, []);
    ctx.lenient = await startPrism('prism-lenient', ctx.daemon.base, ['--validate-request', 'false']);
    say(`tfsyncd at ${ctx.daemon.base}, prism at ${ctx.strict.base} (and ${ctx.lenient.base} not validating requests)`);
    const t0 = Date.now();
    await fixtures.runs(ctx);
    say(`fixtures ready in ${Date.now() - t0} ms`);

    let failed = 0, passed = 0;
    const uncovered = [];
    for (const [key, list] of Object.entries(cases)) {
        const entry = ops.get(key);
        const seen = new Set();
        for (const c of list) {
            const label = `${key}: ${c.name}`;
            let out;
            try {
                if (c.before) await c.before(ctx);
                const req = requestOf(c, ctx, entry.path, entry.method);
                out = entry.method === 'HEAD' ? await checkHead(ctx, req, c, entry)
                    : c.invalid ? await checkInvalid(ctx, req, c)
                    : await checkStrict(ctx, req, c);
                if (out.res && entry.method !== 'HEAD') {
                    const extra = new Set();
                    undocumentedOf(ctx.spec, entry, out.res, extra);
                    if (extra.size) out.problems.push(`members the spec does not name: ${[...extra].join(', ')}`);
                }
                if (out.problems.length === 0 && c.after) await c.after(ctx, out.res);
            } catch (e) {
                out = { problems: [`${e.message}`] };
            }
            if (!ctx.daemon.alive()) out.problems.push(`tfsyncd is gone:\n${logTail('tfsyncd.log')}`);
            if (out.problems.length) {
                failed++;
                console.log(`not ok - ${label}\n    ${out.problems.join('\n    ')}`);
            } else {
                passed++;
                seen.add(String(c.status));
                console.log(`ok - ${label} (${c.status})`);
            }
            if (!ctx.daemon.alive()) fail('tfsyncd died; stopping');
        }
        const documented = Object.keys(entry.op.responses).filter((s) => !seen.has(s) && !['405', '413', '500', '503'].includes(s));
        if (documented.length) uncovered.push(`${key}: ${documented.join(' ')}`);
    }
    if (uncovered.length) say(`documented answers no case reaches (besides 405, 413, 500, 503):\n  ${uncovered.join('\n  ')}`);
    console.log(`${passed} passed, ${failed} failed`);
    if (failed) process.exitCode = 1;
}

await run(main);
