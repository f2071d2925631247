// ui/runs.js: the Runs page. Each pair's last run (state, counts per entity, a progress
// bar of records read against the source's estimate while it runs, with the rate), its
// systems' breakers, its schedule; buttons to start a full or an incremental run (role
// operate: a smaller key's refusal is shown as the API words it).
import { call, get } from './api.js';
import { fill, h, notice, problemNotice, table, tag, when } from './view.js';

export const title = 'Runs';
const UNDER_WAY = ['queued', 'running', 'waiting'];
const COUNTS = ['read', 'written', 'unchanged', 'skipped', 'conflicts', 'failed', 'deleted', 'swept', 'drift'];

export function mount(main, ctx) {
    const status = h('div', { 'aria-live': 'off' });
    const info = h('div', { 'aria-live': 'polite' });
    fill(main, h('h1', {}, 'Runs'), info, status);
    const panels = new Map(); // pair -> {section, body}
    let timer = null;
    let stopped = false;

    function panelOf(name, p) {
        if (panels.has(name)) return panels.get(name);
        const msg = h('div', { class: 'start-msg', 'aria-live': 'polite' });
        const start = (mode) => async () => {
            fill(msg, notice('', `Starting a ${mode} run of ${name}…`));
            try {
                const r = await call('POST', `/sync/${mode}`, { pair: name });
                fill(msg, notice('ok', `Run ${r.json.run_id} (${mode}) started: ${r.json.state}.`));
                refresh();
            } catch (e) {
                if (!ctx.unauthorized(e)) fill(msg, problemNotice(e, `start a ${mode} run of ${name}`));
            }
        };
        const id = `pair-${name.replace(/[^A-Za-z0-9_-]/g, '_')}`;
        const body = h('div', { class: 'pair-body' });
        const section = h('section', { class: 'panel pair', 'aria-labelledby': id, 'data-pair': name },
            h('h2', { id }, name, ' ', h('span', { class: 'muted' }, `(${p.source} → ${p.target})`)),
            h('div', { class: 'actions' },
                h('button', { type: 'button', class: 'start-full', onclick: start('full') }, 'Start full run'),
                h('button', { type: 'button', class: 'start-incremental secondary', onclick: start('incremental') }, 'Start incremental run')),
            msg, body);
        status.append(section);
        const entry = { section, body };
        panels.set(name, entry);
        return entry;
    }

    async function refresh() {
        if (stopped) return;
        clearTimeout(timer);
        let busy = false;
        try {
            const s = await get('/sync/status');
            fill(info);
            for (const [name, p] of Object.entries(s.pairs)) {
                const { body } = panelOf(name, p);
                // A run under way: its own status has the progress (read of the estimate).
                if (p.last_run && UNDER_WAY.includes(p.last_run.state))
                    p.last_run = await get(`/sync/status/${p.last_run.run_id}`);
                fill(body, pairStatus(p));
                busy = busy || p.running;
            }
        } catch (e) {
            if (ctx.unauthorized(e)) return;
            fill(info, problemNotice(e, 'read the runs'));
        }
        if (!stopped) timer = setTimeout(refresh, busy ? 700 : 3000);
    }

    refresh();
    return { refresh, stop: () => { stopped = true; clearTimeout(timer); } };
}

function pairStatus(p) {
    const run = p.last_run;
    const out = [];
    if (!run) out.push(h('p', { class: 'muted' }, 'Never ran.'));
    else {
        out.push(h('dl', { class: 'facts' },
            h('dt', {}, 'Last run'), h('dd', {}, `${run.run_id} (${run.mode}) `, tag(run.state, `state-${run.state} run-state`)),
            h('dt', {}, 'Started'), h('dd', {}, when(run.started_at) || 'not yet', run.actor ? ` by ${run.actor}` : ''),
            run.finished_at ? [h('dt', {}, 'Finished'), h('dd', {}, when(run.finished_at))] : null,
            run.error ? [h('dt', {}, 'Error'), h('dd', {}, run.error)] : null,
            run.waiting ? [h('dt', {}, 'Waiting'), h('dd', {}, run.waiting.reason)] : null,
            run.held ? [h('dt', {}, 'Held'), h('dd', {}, run.held.reason)] : null));
        const counts = run.counts || {};
        if (UNDER_WAY.includes(run.state)) out.push(progress(run, counts));
        const entities = Object.keys(counts);
        if (entities.length)
            out.push(table(['Entity', ...COUNTS.map((c) => h('th', { scope: 'col', class: 'num' }, c))],
                entities.map((e) => h('tr', {}, h('th', { scope: 'row' }, e),
                    COUNTS.map((c) => h('td', { class: 'num' }, counts[e][c] ?? 0)))),
                { class: 'counts', 'aria-label': `Counts per entity of run ${run.run_id}` }));
    }
    const systems = Object.entries(p.systems || {});
    out.push(h('h3', {}, 'Systems'),
        table(['System', 'Status', 'Breaker', 'Failures', 'Error'], systems.map(([n, s]) => h('tr', {},
            h('th', { scope: 'row' }, n), h('td', {}, s.status), h('td', {}, tag(s.circuit, `circuit-${s.circuit}`)),
            h('td', { class: 'num' }, s.failures), h('td', {}, s.error || ''))), { class: 'systems' }));
    out.push(h('p', { class: 'schedule' }, 'Schedule: ',
        p.schedule ? `an incremental run every ${p.schedule.incremental_every}; next at ${when(p.next_run_at)}` : 'none (runs start by the API only)'));
    return out;
}

// A bar per entity whose source gave an estimate: records read of the estimate, and the
// rate over the run's elapsed time.
function progress(run, counts) {
    const secs = (run.elapsed_ms || 0) / 1000;
    const bars = [];
    const entries = run.progress || Object.keys(counts).map((e) => ({ entity: e, records_read: counts[e].read || 0 }));
    for (const { entity: e, records_read: read, estimated_total: total } of entries) {
        const rate = secs > 0 ? read / secs : 0;
        const label = total
            ? `${e}: ${read} of ${total} records (${Math.min(100, Math.round((100 * read) / total))}%), ${rate.toFixed(1)} records/s`
            : `${e}: ${read} records, ${rate.toFixed(1)} records/s (no estimate)`;
        bars.push(h('div', { class: 'progress-row' },
            h('label', { class: 'inline' }, total
                ? h('progress', { max: total, value: Math.min(read, total), 'data-entity': e })
                : h('progress', { 'data-entity': e }), h('span', { class: 'progress-text' }, label))));
    }
    if (!bars.length) bars.push(h('p', {}, `Run ${run.run_id} is ${run.state}; nothing read yet.`));
    return h('div', { class: 'progress', role: 'group', 'aria-label': `Progress of run ${run.run_id}` }, bars);
}
