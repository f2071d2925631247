// ui/view.js: building the page from data. Every value reaches the DOM as text
// (textContent, attributes), never as HTML, so nothing a record holds can run as script.
import { ApiError, Unreachable } from './api.js';

// h('td', {class: 'num'}, 'text', child, ...): an element; attributes starting with "on"
// are listeners; null, undefined and false children are left out.
export function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === undefined || v === null || v === false) continue;
        if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
        else if (k === 'class') el.className = v;
        else if (v === true) el.setAttribute(k, '');
        else el.setAttribute(k, String(v));
    }
    append(el, children);
    return el;
}

function append(el, children) {
    for (const c of children) {
        if (c === undefined || c === null || c === false) continue;
        if (Array.isArray(c)) append(el, c);
        else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
}

// A value as a table shows it: JSON for objects, "null" for null, "" for absent.
export function show(v) {
    if (v === undefined) return '';
    if (v === null) return 'null';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
}

export function when(ts) {
    if (!ts) return '';
    const d = new Date(ts);
    return Number.isNaN(d.getTime()) ? ts : d.toLocaleString();
}

export function tag(text, kind) {
    return h('span', { class: `tag ${kind || ''}` }, text);
}

export function table(head, rows, attrs) {
    return h('div', { class: 'table-wrap' },
        h('table', attrs || {},
            h('thead', {}, h('tr', {}, head.map((c) => (typeof c === 'string' ? h('th', { scope: 'col' }, c) : c)))),
            h('tbody', {}, rows)));
}

// What went wrong, for a person: a role refusal names the role needed (the API's detail
// does), a bad key says to sign in again, a refusal lists its reasons.
export function problemNotice(e, doing) {
    if (e instanceof Unreachable) return notice('error', `Could not ${doing}: ${e.message}.`);
    if (!(e instanceof ApiError)) return notice('error', `Could not ${doing}: ${e.message}`);
    const p = e.problem;
    let lead = `Could not ${doing}`;
    if (e.status === 403) lead = `Refused (${e.status}): your key's role is too small to ${doing}`;
    else if (e.status === 401) lead = 'Your key is not accepted: sign out and sign in with a configured key';
    else lead += ` (${e.status} ${p.title || ''})`;
    const reasons = Array.isArray(p.reasons) ? p.reasons : [];
    return notice('error', p.detail ? `${lead}: ${p.detail}` : `${lead}.`,
        reasons.length ? h('ul', { class: 'reasons' }, reasons.map((r) => h('li', {}, typeof r === 'string' ? r : JSON.stringify(r)))) : null);
}

export function notice(kind, text, extra) {
    return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, h('p', {}, text), extra);
}

// Replaces the children of el.
export function fill(el, ...children) {
    el.replaceChildren();
    append(el, children);
}
