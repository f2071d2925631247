// ui/app.js: the console's shell. Sign-in (the key), the hash routes of the four pages,
// the banner shown while the daemon does not answer, and the refresh of the page shown.
import { ApiError, call, key, onReachability } from './api.js';
import { fill, h, problemNotice } from './view.js';
import * as runs from './runs.js';
import * as conflicts from './conflicts.js';
import * as deadLetters from './dead_letters.js';
import * as audit from './audit.js';

const pages = { runs, conflicts, 'dead-letters': deadLetters, audit };
const main = document.getElementById('main');
const nav = document.getElementById('nav');
const signout = document.getElementById('signout');
const banner = document.getElementById('banner');
let current = null; // {page, stop}

// The skip link moves focus to the content without touching the hash (the route).
document.getElementById('skip').addEventListener('click', (ev) => {
    ev.preventDefault();
    main.focus();
});

signout.addEventListener('click', () => {
    key.clear();
    location.hash = '#/login';
    route();
});

onReachability((down) => {
    if (down) {
        banner.textContent = `The daemon at ${location.origin} is not answering; retrying every 2 seconds.`;
        banner.hidden = false;
    } else {
        banner.hidden = true;
        banner.textContent = '';
        if (current && current.refresh) current.refresh();
    }
});

function parseHash() {
    const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
    return { name: parts[0] || 'runs', args: parts.slice(1) };
}

function signIn(message) {
    nav.hidden = true;
    signout.hidden = true;
    document.title = 'Sign in · TerraFusion Sync console';
    const input = h('input', { type: 'password', id: 'key', name: 'key', autocomplete: 'off', required: true, 'aria-describedby': 'key-help' });
    const out = h('div', { 'aria-live': 'polite' }, message || null);
    const form = h('form', { class: 'login panel', onsubmit: async (ev) => {
        ev.preventDefault();
        key.set(input.value.trim());
        try {
            // Any read call proves the key: a read key may call every GET.
            await call('GET', '/pairs');
            // The page asked for (a link to a conflict, say), else Runs; the focus on it.
            if (parseHash().name === 'login') location.hash = '#/runs';
            route();
            main.focus({ preventScroll: true });
        } catch (e) {
            key.clear();
            fill(out, problemNotice(e, 'sign in'));
            input.focus();
        }
    } },
    h('h1', {}, 'Sign in'),
    h('label', { for: 'key' }, 'API key', input),
    h('p', { id: 'key-help', class: 'muted' }, 'The key is kept in this tab only (sessionStorage) and sent with each API call; its role (read, operate, admin) decides what you may do.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Sign in')),
    out);
    fill(main, form);
    input.focus();
}

async function route() {
    if (current && current.stop) current.stop();
    current = null;
    const { name, args } = parseHash();
    if (!key.get() || name === 'login') return signIn();
    const page = pages[name] || runs;
    nav.hidden = false;
    signout.hidden = false;
    for (const a of nav.querySelectorAll('a'))
        if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
        else a.removeAttribute('aria-current');
    document.title = `${page.title} · TerraFusion Sync console`;
    const ctx = {
        args,
        go: (hash) => { location.hash = hash; },
        // A 401 on any call means the key no longer works (a reload took it away).
        unauthorized: (e) => {
            if (e instanceof ApiError && e.status === 401) {
                key.clear();
                signIn(problemNotice(e, 'continue'));
                return true;
            }
            return false;
        },
    };
    current = page.mount(main, ctx) || {};
}

// A new page takes the focus, so a keyboard or screen reader user starts at its content.
window.addEventListener('hashchange', () => {
    route();
    if (key.get() && parseHash().name !== 'login') main.focus({ preventScroll: true });
});
route();
