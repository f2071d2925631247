// tests/ui/conflict_match.mjs — the console's conflict page finds each disputed field's
// record by the record's key (ui/conflicts.js keyFields, recordFor), never by values that
// happen to equal the key's parts: one entity's records overlap (an owner table: parcel,
// year and a sequence number beside a percentage that equals another record's sequence).
// Plain Node.js, no browser: the page's module is imported as it is served.
//
// Usage (tests/ui/CMakeLists.txt registers it): node conflict_match.mjs --source DIR
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const i = process.argv.indexOf('--source');
if (i < 0 || !process.argv[i + 1]) {
    console.error('usage: node conflict_match.mjs --source DIR');
    process.exit(2);
}
const { keyFields, recordFor } = await import(pathToFileURL(path.join(process.argv[i + 1], 'ui', 'conflicts.js')).href);

let failed = 0;
const check = (what, fn) => {
    try {
        fn();
        console.log(`ok - ${what}`);
    } catch (e) {
        failed++;
        console.log(`not ok - ${what}\n    ${e.message.split('\n').join('\n    ')}`);
    }
};

// Two records of one entity whose values overlap: r1's pct is r2's seq.
const r1 = { parid: 'R1', taxyr: 2026, seq: 1, own1: 'A', pct: 2 };
const r2 = { parid: 'R1', taxyr: 2026, seq: 2, own1: 'B', pct: 1 };
const t1 = { ...r1, own1: 'A-target' }, t2 = { ...r2, own1: 'B-target' };
const source = [r1, r2], target = [t2, t1]; // the target's in another order

check('the key fields found from the records: the earliest that key every record', () => {
    assert.deepEqual(keyFields([source, target, null], ['R1|2026|2']), ['parid', 'taxyr', 'seq']);
});

check('a disputed field of the second record finds the second record on every side', () => {
    const kf = keyFields([source, target], ['R1|2026|2']);
    assert.equal(recordFor(source, 'R1|2026|2', kf), r2);
    assert.equal(recordFor(target, 'R1|2026|2', kf), t2);
    assert.equal(recordFor(target, 'R1|2026|1', kf), t1);
});

check('keys that fit no fields: the old match by values, the only record when there is one', () => {
    assert.equal(keyFields([[{ a: 'x' }]], ['y']), null);
    assert.equal(recordFor([{ a: 'x' }], 'y', null)?.a, 'x');
    assert.equal(recordFor([], 'y', null), null);
});

console.log(`${3 - failed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
