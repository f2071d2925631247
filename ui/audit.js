// ui/audit.js: the Audit page. A record's history by its source key (and pair, entity):
// every entry, newest last, with before and after of each field it changed.
import { get, query } from './api.js';
import { fill, h, problemNotice, show, table, when } from './view.js';

export const title = 'Audit';

export function mount(main, ctx) {
    const key = h('input', { type: 'text', id: 'a-key', name: 'key', required: true, placeholder: '10042|2026', 'aria-describedby': 'a-key-help' });
    const pair = h('input', { type: 'text', id: 'a-pair', name: 'pair' });
    const entity = h('input', { type: 'text', id: 'a-entity', name: 'entity' });
    const out = h('div', { 'aria-live': 'polite' });
    if (ctx.args[0]) key.value = ctx.args[0];

    async function load() {
        const k = key.value.trim();
        if (!k) return fill(out);
        fill(out, h('p', { class: 'muted' }, 'Loading…'));
        try {
            const r = await get(`/audit${query({ key: k, pair: pair.value.trim(), entity: entity.value.trim(), limit: 500 })}`);
            if (!r.entries.length) return fill(out, h('p', {}, `No audit entries for ${k}.`));
            fill(out, r.entries.map((e) => h('section', { class: 'panel audit-entry', 'aria-labelledby': `ae-${e.id}` },
                h('h2', { id: `ae-${e.id}` }, `${e.op} · entry ${e.id}`),
                h('p', { class: 'muted' }, `${when(e.at)} · run ${e.run_id} · ${e.pair} · ${e.entity} ${e.key} · by ${e.actor}`),
                changes(e), e.detail ? h('p', { class: 'mono' }, `detail: ${JSON.stringify(e.detail)}`) : null)));
        } catch (e) {
            if (!ctx.unauthorized(e)) fill(out, problemNotice(e, 'read the audit trail'));
        }
    }

    const form = h('form', { class: 'row panel', role: 'search', 'aria-label': 'A record\'s history', onsubmit: (ev) => { ev.preventDefault(); load(); } },
        h('label', { for: 'a-key' }, 'Source key', key), h('label', { for: 'a-pair' }, 'Pair', pair),
        h('label', { for: 'a-entity' }, 'Source entity', entity), h('button', { type: 'submit' }, 'Show history'));
    fill(main, h('h1', {}, 'Audit'),
        h('p', { id: 'a-key-help', class: 'muted' }, 'A record\'s key as the source writes it: a PACS property is prop_id|year, e.g. 10042|2026.'),
        form, out);
    load();
    return { refresh: load };
}

function changes(e) {
    const rows = [];
    for (const [entity, fields] of Object.entries(e.changes || {}))
        for (const [f, v] of Object.entries(fields))
            rows.push(h('tr', {}, h('td', {}, entity), h('th', { scope: 'row', class: 'mono' }, f), h('td', {}, show(v.before)), h('td', {}, show(v.after))));
    if (!rows.length) return h('p', { class: 'muted' }, 'No field changed.');
    return table(['Target entity', 'Field', 'Before', 'After'], rows, { class: 'changes', 'aria-label': `Changes of entry ${e.id}` });
}
