// ui/dead_letters.js: the Dead letters page. The records that failed (reasons, stage, the
// script's file and line when a script failed), filtered by pair, entity, stage, run and
// status; replay one, or every open one the filter selects (role operate); discard one
// (role admin).
import { call, get, query } from './api.js';
import { fill, h, notice, problemNotice, table, tag, when } from './view.js';

export const title = 'Dead letters';
const STAGES = ['', 'read', 'transform', 'validate', 'conflict', 'write'];

// "pacs_to_cama.lua:42: ..." in a reason: the script and its line.
function scriptLine(reasons) {
    for (const r of reasons || []) {
        const m = /([A-Za-z0-9_./-]+\.lua):([0-9]+)/.exec(r);
        if (m) return `${m[1]}:${m[2]}`;
    }
    return '';
}

export function mount(main, ctx) {
    const field = (id, label, input) => h('label', { for: id }, label, input);
    const pair = h('input', { type: 'text', id: 'd-pair', name: 'pair' });
    const entity = h('input', { type: 'text', id: 'd-entity', name: 'entity' });
    const stage = h('select', { id: 'd-stage', name: 'stage' }, STAGES.map((s) => h('option', { value: s }, s || 'any')));
    const run = h('input', { type: 'text', id: 'd-run', name: 'run_id', inputmode: 'numeric', size: 6 });
    const status = h('select', { id: 'd-status', name: 'status' },
        ['open', 'replayed', 'resolved', 'discarded', 'superseded', 'all'].map((s) => h('option', { value: s }, s)));
    const msg = h('div', { class: 'dl-msg', 'aria-live': 'polite' });
    const out = h('div', {});
    const filter = () => ({ pair: pair.value.trim(), entity: entity.value.trim(), stage: stage.value, run_id: run.value.trim() });

    const showReplay = (j, what) => {
        const again = (j.keys || []).filter((k) => k.outcome === 'failed_again');
        fill(msg, notice(again.length ? 'error' : 'ok',
            `${what}: ${j.replayed} replayed, ${j.failed_again} failed again (run ${j.run_id}, ${j.state}).`,
            again.length ? h('ul', {}, again.map((k) => h('li', {}, `${k.key} (${k.stage}): ${(k.reasons || []).join('; ')}`))) : null));
    };
    const act = async (method, path, body, what) => {
        fill(msg, notice('', `${what}…`));
        try {
            const r = await call(method, path, body);
            if (r.status === 202) fill(msg, notice('ok', `${what}: run ${r.json.run_id} is under way; reload the list when it ends.`));
            else if (method === 'DELETE') fill(msg, notice('ok', `${what}: done.`));
            else showReplay(r.json, what);
            load();
        } catch (e) {
            if (!ctx.unauthorized(e)) fill(msg, problemNotice(e, what.toLowerCase()));
        }
    };
    const replayFiltered = () => {
        const f = filter();
        if (!f.pair) return fill(msg, notice('error', 'Name the pair whose open dead letters to replay (the Pair filter).'));
        const body = { pair: f.pair };
        if (f.entity) body.entity = f.entity;
        if (f.stage) body.stage = f.stage;
        if (f.run_id) body.run_id = Number(f.run_id);
        act('POST', '/dead-letters/replay', body, `Replay of the open dead letters of ${f.pair} the filter selects`);
    };

    async function load() {
        try {
            const r = await get(`/dead-letters${query({ ...filter(), status: status.value, limit: 200 })}`);
            if (!r.dead_letters.length) return fill(out, h('p', {}, 'No dead letters match.'));
            fill(out, table(['Id', 'Pair', 'Entity', 'Key', 'Stage', 'Script line', 'Reasons', 'Attempts', 'Status', 'Failed', 'Actions'],
                r.dead_letters.map((d) => h('tr', { 'data-id': d.id },
                    h('td', { class: 'num' }, d.id), h('td', {}, d.pair), h('td', {}, d.entity), h('td', { class: 'mono' }, d.source_key),
                    h('td', {}, d.stage), h('td', { class: 'mono' }, scriptLine(d.reasons)),
                    h('td', {}, h('ul', { class: 'reasons' }, d.reasons.map((x) => h('li', {}, x)))),
                    h('td', { class: 'num' }, d.attempts), h('td', {}, tag(d.status)), h('td', {}, when(d.created_at)),
                    h('td', {}, d.status === 'open' ? h('div', { class: 'actions' },
                        h('button', { type: 'button', class: 'replay-one', onclick: () => act('POST', `/dead-letters/${d.id}/replay`, undefined, `Replay of dead letter ${d.id}`) }, `Replay ${d.id}`),
                        h('button', { type: 'button', class: 'discard-one danger', onclick: () => act('DELETE', `/dead-letters/${d.id}`, undefined, `Discard of dead letter ${d.id}`) }, `Discard ${d.id}`)) : ''))),
                { class: 'dead-letters', 'aria-label': 'Dead letters' }));
        } catch (e) {
            if (!ctx.unauthorized(e)) fill(out, problemNotice(e, 'list the dead letters'));
        }
    }

    const form = h('form', { class: 'row panel', role: 'search', 'aria-label': 'Filter dead letters', onsubmit: (ev) => { ev.preventDefault(); load(); } },
        field('d-pair', 'Pair', pair), field('d-entity', 'Source entity', entity), field('d-stage', 'Stage', stage),
        field('d-run', 'Run', run), field('d-status', 'Status', status),
        h('button', { type: 'submit' }, 'Filter'),
        h('button', { type: 'button', class: 'replay-filtered secondary', onclick: replayFiltered }, 'Replay every open one selected'));
    fill(main, h('h1', {}, 'Dead letters'),
        h('p', { class: 'muted' }, 'Replaying needs role operate, discarding role admin. Fix the script or the data first: a replay maps the record again with the script as it is now.'),
        form, msg, out);
    load();
    return { refresh: load };
}
