// tests/tools/harness.mjs — what the Node.js tests (tests/openapi/conformance.mjs,
// tests/ui/console.mjs) share: the test PostgreSQL (psql, conninfo, databases cloned from
// the templates scripts/test.sh seeds), child processes logged into the run's folder, a
// real tfsyncd waited for through its ready file, polling with a deadline, and the
// clean-up that stops the children and drops the clones.
//
//   const h = harness({ tag: 'ui', name: 'ui', build: args.build });
//
// tag names the folder (tfs-<tag>-XXXX in the temporary folder) and the clones
// (<tag>_<label>_<pid>_<counter>_<hex>, as scripts/templates.sh's sweep expects, so a
// crashed run's clones are dropped by the next one); name starts the messages. PostgreSQL
// from TFS_TEST_PGHOST/PORT/USER (or PGHOST/PORT/USER), as the C tests find it;
// TFS_TEST_KEEP=1 keeps the folder with the configs and the logs.
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function harness({ tag, name, build }) {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), `tfs-${tag}-`));
    const children = [];
    const databases = [];
    const pg = {
        host: process.env.TFS_TEST_PGHOST || process.env.PGHOST || `/tmp/tfsync-pg-${os.userInfo().uid}`,
        port: process.env.TFS_TEST_PGPORT || process.env.PGPORT || '55432',
        user: process.env.TFS_TEST_PGUSER || process.env.PGUSER || 'postgres',
    };

    // Reports msg, marks the run failed and throws (e.reported: said already).
    function fail(msg) {
        console.error(`${name}: ${msg}`);
        process.exitCode = 1;
        const e = new Error(msg);
        e.reported = true;
        throw e;
    }

    function say(msg) {
        console.log(`${name}: ${msg}`);
    }

    // ---- PostgreSQL ---------------------------------------------------------------------

    function psql(db, sql) {
        try {
            return execFileSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', pg.host, '-p', pg.port,
                '-U', pg.user, '-d', db, '-c', sql], {
                encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
                env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' },
            }).trim();
        } catch (e) {
            fail(`psql on ${db} failed: ${e.stderr || e.message}\nSQL: ${sql}`);
        }
    }

    function conninfo(db) {
        const q = (v) => `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
        return `host=${q(pg.host)} port=${q(pg.port)} user=${q(pg.user)} dbname=${q(db)}`;
    }

    let cloneCounter = 0;
    async function clone(template, label) {
        const db = `${tag}_${label}_${process.pid}_${++cloneCounter}_${crypto.randomBytes(2).toString('hex')}`;
        const deadline = Date.now() + 30000;
        for (;;) {
            try {
                execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', pg.host, '-p', pg.port, '-U', pg.user,
                    '-d', 'postgres', '-c', `CREATE DATABASE "${db}" TEMPLATE "${template}"`],
                    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
                databases.push(db);
                return db;
            } catch (e) {
                // Another test cloning the same template holds it for a moment.
                if (!/being accessed by other users/.test(e.stderr || '') || Date.now() > deadline)
                    fail(`could not clone ${template} (did scripts/test.sh seed the templates?): ${e.stderr || e.message}`);
                await new Promise((r) => setTimeout(r, 50));
            }
        }
    }

    // ---- processes ----------------------------------------------------------------------

    // A child whose stdout (kept readable for the caller) and stderr go to <work>/logName;
    // child.exited resolves to "exit N" or "signal S".
    function start(cmd, argv, logName) {
        const log = fs.openSync(path.join(work, logName), 'a');
        const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', log] });
        child.logName = logName;
        children.push(child);
        child.stdout.on('data', (d) => fs.writeSync(log, d));
        child.exited = new Promise((r) => child.on('exit', (code, sig) => r(sig ? `signal ${sig}` : `exit ${code}`)));
        return child;
    }

    function logTail(logName) {
        try {
            return fs.readFileSync(path.join(work, logName), 'utf8').split('\n').slice(-40).join('\n');
        } catch {
            return '';
        }
    }

    // probe() every 50 ms until it gives a truthy value (returned); fails after ms.
    async function until(what, ms, probe) {
        const deadline = Date.now() + ms;
        for (;;) {
            const v = await probe();
            if (v) return v;
            if (Date.now() > deadline) fail(`${what}: not after ${ms / 1000} s`);
            await new Promise((r) => setTimeout(r, 50));
        }
    }

    // <build>/tfsyncd --config configPath, logged into <label>.log, ready when the file
    // ready (the config's listen.ready_file) names its port (20 s at most; fails with the
    // log's tail if it ends first). d.port, d.base (http), d.alive(), and d.stop(), which
    // fails unless SIGTERM ends it with exit 0.
    async function startDaemon(configPath, ready, label = 'tfsyncd') {
        fs.rmSync(ready, { force: true });
        const d = start(path.join(build, 'tfsyncd'), ['--config', configPath], `${label}.log`);
        let gone = null;
        d.exited.then((how) => { gone = how; });
        d.port = await until(`tfsyncd ${label} ready`, 20000, async () => {
            if (gone) fail(`tfsyncd ended during start-up (${gone}):\n${logTail(d.logName)}`);
            try {
                const t = fs.readFileSync(ready, 'utf8').split('\n')[0];
                return /^[0-9]+$/.test(t) ? Number(t) : null;
            } catch {
                return null;
            }
        });
        d.base = `http://127.0.0.1:${d.port}`;
        d.alive = () => gone === null;
        d.stop = async () => {
            d.kill('SIGTERM');
            const how = await d.exited;
            if (how !== 'exit 0') fail(`tfsyncd ${label} ended ${how}:\n${logTail(d.logName)}`);
        };
        return d;
    }

    // Stops every child still running (SIGTERM, SIGKILL after 10 s), drops the clones and
    // removes the folder unless the run failed or TFS_TEST_KEEP is set.
    async function cleanup() {
        for (const c of children.reverse()) {
            if (c.exitCode === null && c.signalCode === null) {
                const ended = c.exited || new Promise((r) => c.on('exit', r));
                c.kill('SIGTERM');
                const t = setTimeout(() => c.kill('SIGKILL'), 10000);
                await ended;
                clearTimeout(t);
            }
        }
        for (const db of databases) {
            try {
                execFileSync('psql', ['-X', '-q', '-h', pg.host, '-p', pg.port, '-U', pg.user, '-d', 'postgres',
                    '-c', `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`], { stdio: 'ignore' });
            } catch { /* the next run's sweep drops it */ }
        }
        if (process.env.TFS_TEST_KEEP || process.exitCode) say(`logs and config kept in ${work}`);
        else fs.rmSync(work, { recursive: true, force: true });
    }

    // The logs' tails of every child that has one, for a failed run's report.
    function dumpLogs() {
        for (const c of children) if (c.logName) console.error(`--- ${c.logName} ---\n${logTail(c.logName)}`);
    }

    // Runs the test's main once. SIGTERM (ctest's timeout) cleans up and exits 143; a failure
    // sets exit code 1, says what it was unless reported, and dumps the logs; whatever
    // happens, closeFirst (what the test opened itself) then the clean-up run, then done.
    async function run(main, { closeFirst = async () => {}, done = () => {} } = {}) {
        const closeAll = async () => {
            await closeFirst();
            await cleanup();
        };
        process.on('SIGTERM', () => { process.exitCode = 143; closeAll().then(() => process.exit()); });
        try {
            await main();
        } catch (e) {
            process.exitCode = 1;
            if (!e.reported) console.error(e.stack || e.message);
            dumpLogs();
        } finally {
            await closeAll();
            done();
        }
    }

    return { work, pg, children, fail, say, psql, conninfo, clone, start, logTail, until, startDaemon, cleanup, dumpLogs, run };
}
