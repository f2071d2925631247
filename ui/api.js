// ui/api.js: the one door to the daemon. Every call is the public HTTP API with the key
// typed at sign-in (kept in sessionStorage: this tab only, gone when it closes), so the
// key's role decides what the console may do, exactly as for curl or tfsync.
const KEY = 'tfsync.console.key';

export class ApiError extends Error {
    constructor(status, problem) {
        super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
        this.status = status;
        this.problem = problem || {};
    }
}

export class Unreachable extends Error {}

const listeners = new Set();
let down = false;
let retry = null;

// fn(true) when the daemon stops answering, fn(false) when it answers again.
export function onReachability(fn) {
    listeners.add(fn);
}

function setDown(value) {
    if (down === value) return;
    down = value;
    for (const fn of listeners) fn(value);
    if (value && !retry) retry = setInterval(probe, 2000);
    if (!value && retry) { clearInterval(retry); retry = null; }
}

async function probe() {
    try {
        await fetch('/health', { cache: 'no-store' });
        setDown(false);
    } catch { /* still down */ }
}

export const key = {
    get: () => sessionStorage.getItem(KEY),
    set: (k) => sessionStorage.setItem(KEY, k),
    clear: () => sessionStorage.removeItem(KEY),
};

// method, path ('/sync/status'), optional JSON body; resolves to {status, json} for a 2xx,
// rejects with ApiError (the problem+json) or Unreachable.
export async function call(method, path, body) {
    const headers = { Accept: 'application/json' };
    const k = key.get();
    if (k) headers.Authorization = `Bearer ${k}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
        res = await fetch(path, {
            method, headers, cache: 'no-store', credentials: 'omit',
            body: body === undefined ? undefined : JSON.stringify(body),
        });
    } catch (e) {
        setDown(true);
        throw new Unreachable(`the daemon at ${location.origin} is not answering`);
    }
    setDown(false);
    const text = await res.text();
    let json;
    try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
    if (!res.ok) throw new ApiError(res.status, json || { title: res.statusText, detail: text });
    return { status: res.status, json };
}

export const get = (path) => call('GET', path).then((r) => r.json);

// A query string of the non-empty members of o.
export function query(o) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
    const s = q.toString();
    return s ? `?${s}` : '';
}
