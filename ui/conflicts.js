// ui/conflicts.js: the Conflicts page. The list (filter by pair, entity, status); one
// conflict with its source, target and base side by side, the fields in dispute marked;
// resolved with the source, the target, or a field-by-field merge whose record is the
// source's with each disputed field set as chosen. A merge the API refuses shows the
// refusal's reasons.
import { call, get, query } from './api.js';
import { fill, h, notice, problemNotice, show, table, tag, when } from './view.js';

export const title = 'Conflicts';

export function mount(main, ctx) {
    if (ctx.args[0]) return detail(main, ctx, ctx.args[0]);
    return list(main, ctx);
}

function list(main, ctx) {
    const params = new URLSearchParams(location.hash.split('?')[1] || '');
    const pair = h('input', { type: 'text', id: 'f-pair', name: 'pair', value: params.get('pair') || '' });
    const entity = h('input', { type: 'text', id: 'f-entity', name: 'entity', value: params.get('entity') || '' });
    const status = h('select', { id: 'f-status', name: 'status' },
        ['open', 'resolved', 'superseded'].map((s) => h('option', { value: s, selected: s === (params.get('status') || 'open') }, s)));
    const out = h('div', { 'aria-live': 'polite' });
    const load = async () => {
        fill(out, h('p', { class: 'muted' }, 'Loading…'));
        try {
            const r = await get(`/sync/conflicts${query({ pair: pair.value.trim(), entity: entity.value.trim(), status: status.value, limit: 200 })}`);
            if (!r.conflicts.length) return fill(out, h('p', {}, `No ${status.value} conflicts.`));
            fill(out, table(['Id', 'Pair', 'Entity', 'Key', 'Fields in dispute', 'Status', 'Run', 'Found'],
                r.conflicts.map((c) => h('tr', {},
                    h('td', {}, h('a', { href: `#/conflicts/${c.id}`, class: 'open-conflict' }, `Conflict ${c.id}`)),
                    h('td', {}, c.pair), h('td', {}, c.entity), h('td', { class: 'mono' }, c.source_key),
                    h('td', {}, c.fields.map((f) => `${f.entity}.${f.field}`).join(', ')),
                    h('td', {}, tag(c.status)), h('td', { class: 'num' }, c.run_id), h('td', {}, when(c.created_at)))),
                { class: 'conflicts', 'aria-label': 'Conflicts' }));
        } catch (e) {
            if (!ctx.unauthorized(e)) fill(out, problemNotice(e, 'list the conflicts'));
        }
    };
    const form = h('form', { class: 'row panel', role: 'search', 'aria-label': 'Filter conflicts', onsubmit: (ev) => { ev.preventDefault(); load(); } },
        h('label', { for: 'f-pair' }, 'Pair', pair), h('label', { for: 'f-entity' }, 'Source entity', entity),
        h('label', { for: 'f-status' }, 'Status', status), h('button', { type: 'submit' }, 'Filter'));
    fill(main, h('h1', {}, 'Conflicts'), form, out);
    load();
    return { refresh: load };
}

// A record's key under fields: its values joined by "|", as the daemon writes keys.
const keyOf = (r, fields) => fields.map((n) => String(r[n])).join('|');

// The key fields of a target entity, found from its records: the conflict names each
// disputed record by its key (the key fields' values in field order, joined by "|") but
// not the fields. The earliest fields, in the records' order, under which every disputed
// key is one record's and no two records of a side share a key; null when none are.
export function keyFields(sides, keys) {
    const lists = sides.filter(Array.isArray);
    const recs = lists.flat();
    if (!recs.length || !keys.length) return null;
    const k = String(keys[0]).split('|').length;
    const names = [...new Set(recs.flatMap((r) => Object.keys(r)))];
    const fits = (fields) => keys.every((key) => recs.some((r) => keyOf(r, fields) === String(key))) &&
        lists.every((l) => new Set(l.map((r) => keyOf(r, fields))).size === l.length);
    // Every choice of k names in order, earliest first (at most a few thousand).
    const pick = (from, chosen) => {
        if (chosen.length === k) return fits(chosen) ? chosen : null;
        for (let i = from; i <= names.length - (k - chosen.length); i++) {
            const found = pick(i + 1, [...chosen, names[i]]);
            if (found) return found;
        }
        return null;
    };
    return pick(0, []);
}

// The record of a target entity whose key is key: by its key fields when they are known
// (keyFields); else the one whose values hold every part of the key, or the only one.
export function recordFor(records, key, fields) {
    if (!Array.isArray(records)) return null;
    if (fields) return records.find((r) => keyOf(r, fields) === String(key)) || null;
    const parts = String(key).split('|');
    const found = records.find((r) => parts.every((p) => Object.values(r).some((v) => String(v) === p)));
    return found || (records.length === 1 ? records[0] : null);
}

function detail(main, ctx, id) {
    const out = h('div', {});
    // Outside out, so the answer to a resolve stays when the conflict is shown again.
    const msg = h('div', { class: 'resolve-msg', 'aria-live': 'polite' });
    fill(main, h('p', {}, h('a', { href: '#/conflicts' }, '← All conflicts')), h('h1', {}, `Conflict ${id}`), msg, out);
    const load = async () => {
        try {
            render(await get(`/sync/conflicts/${encodeURIComponent(id)}`));
        } catch (e) {
            if (!ctx.unauthorized(e)) fill(out, problemNotice(e, `read conflict ${id}`));
        }
    };
    function render(c) {
        // Each target entity's key fields, found once from its records on every side.
        const kfs = new Map();
        const keyFieldsOf = (e) => {
            if (!kfs.has(e)) {
                kfs.set(e, keyFields([(c.source || {})[e], (c.target || {})[e], (c.base || {})[e]],
                    c.fields.filter((f) => f.entity === e).map((f) => f.key)));
            }
            return kfs.get(e);
        };
        const disputed = new Set(c.fields.map((f) => `${f.entity}\u0000${f.key}\u0000${f.field}`));
        const sections = [];
        const entities = new Set([...Object.keys(c.source || {}), ...Object.keys(c.target || {})]);
        for (const e of entities) {
            const src = c.source[e] || [];
            const kf = keyFieldsOf(e);
            for (let i = 0; i < Math.max(src.length, (c.target[e] || []).length); i++) {
                const s = src[i] || {};
                const fieldsHere = c.fields.filter((f) => f.entity === e && recordFor(src, f.key, kf) === src[i]);
                const key = fieldsHere.length ? fieldsHere[0].key : kf && src[i] ? keyOf(src[i], kf) : null;
                const t = (key ? recordFor(c.target[e], key, kf) : (c.target[e] || [])[i]) || {};
                const b = (c.base && (key ? recordFor(c.base[e], key, kf) : (c.base[e] || [])[i])) || {};
                const names = [...new Set([...Object.keys(s), ...Object.keys(t), ...Object.keys(b)])];
                sections.push(h('h2', {}, `${e}`, key ? h('span', { class: 'muted mono' }, ` ${key}`) : null),
                    table(['Field', 'Source (would write)', 'Target (holds now)', 'Base (last written)', 'In dispute'],
                        names.map((n) => {
                            const hot = key && disputed.has(`${e}\u0000${key}\u0000${n}`);
                            return h('tr', { class: hot ? 'disputed' : null },
                                h('th', { scope: 'row', class: 'mono' }, n), h('td', {}, show(s[n])), h('td', {}, show(t[n])),
                                h('td', {}, show(b[n])), h('td', {}, hot ? 'yes' : ''));
                        }), { class: 'sides', 'aria-label': `${e}: source, target and base side by side` }));
            }
        }
        const resolve = async (body, what) => {
            fill(msg, notice('', `Resolving conflict ${c.id} with ${what}…`));
            try {
                const r = await call('POST', `/sync/conflicts/${c.id}/resolve`, body);
                const j = r.json || {};
                fill(msg, notice('ok', r.status === 202
                    ? `Conflict ${c.id}: the resolve is run ${j.run_id}, still under way.`
                    : `Conflict ${c.id} resolved (${j.resolution}): ${j.written} target record(s) written.`));
                load();
            } catch (e) {
                if (!ctx.unauthorized(e)) fill(msg, problemNotice(e, `resolve conflict ${c.id}`));
            }
        };
        const open = c.status === 'open';
        const choices = c.fields.map((f, i) => {
            const name = `choice-${i}`;
            const other = h('input', { type: 'text', id: `${name}-value`, 'aria-label': `${f.entity}.${f.field}: another value`, value: show(f.source) });
            return h('fieldset', { class: 'merge-field', 'data-field': f.field },
                h('legend', {}, `${f.entity}.${f.field} `, h('span', { class: 'mono muted' }, f.key)),
                h('label', { class: 'inline' }, h('input', { type: 'radio', name, value: 'source', checked: true }), `source: ${show(f.source)}`),
                h('label', { class: 'inline' }, h('input', { type: 'radio', name, value: 'target' }), `target: ${show(f.target)}`),
                h('label', { class: 'inline' }, h('input', { type: 'radio', name, value: 'other' }), 'this value:'), other);
        });
        const merge = (ev) => {
            ev.preventDefault();
            // The source's records, each disputed field set as chosen.
            const record = JSON.parse(JSON.stringify(c.source));
            c.fields.forEach((f, i) => {
                const pick = main.querySelector(`input[name="choice-${i}"]:checked`).value;
                const rec = recordFor(record[f.entity], f.key, keyFieldsOf(f.entity));
                if (!rec) return;
                if (pick === 'target') rec[f.field] = f.target;
                else if (pick === 'other') {
                    const text = main.querySelector(`#choice-${i}-value`).value;
                    rec[f.field] = typeof f.source === 'number' && text.trim() !== '' && !Number.isNaN(Number(text)) ? Number(text) : text;
                }
            });
            resolve({ record }, 'a field-by-field merge');
        };
        fill(out,
            h('dl', { class: 'facts' },
                h('dt', {}, 'Pair'), h('dd', {}, c.pair), h('dt', {}, 'Source entity'), h('dd', {}, c.entity),
                h('dt', {}, 'Key'), h('dd', { class: 'mono' }, c.source_key), h('dt', {}, 'Status'), h('dd', {}, tag(c.status, 'conflict-status')),
                c.resolution ? [h('dt', {}, 'Resolution'), h('dd', {}, `${c.resolution} by ${c.resolved_by || '?'} at ${when(c.resolved_at)}`)] : null),
            sections,
            open ? h('section', { class: 'panel', 'aria-labelledby': 'resolve-h' },
                h('h2', { id: 'resolve-h' }, 'Resolve'),
                h('div', { class: 'actions' },
                    h('button', { type: 'button', class: 'resolve-source', onclick: () => resolve({ choose: 'source' }, 'the source') }, 'Take the source'),
                    h('button', { type: 'button', class: 'resolve-target secondary', onclick: () => resolve({ choose: 'target' }, 'the target') }, 'Keep the target')),
                h('form', { class: 'merge', 'aria-label': 'Field-by-field merge', onsubmit: merge },
                    h('h3', {}, 'Field by field'), choices,
                    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'resolve-merge' }, 'Resolve with this merge')))) : null);
    }
    load();
    return {};
}
