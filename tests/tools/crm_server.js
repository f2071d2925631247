// tests/tools/crm_server.js — the CRM the crm tests talk to: json-server 0.17 (a real,
// independent REST server, tests/tools/package.json) serving a CRM data file, behind a
// small proxy that does what json-server does not and a real CRM does:
//   * checks the bearer token (401 {"error": ...} otherwise);
//   * injects faults on demand: POST /__faults with a JSON array of rules
//     {"method": "PUT", "path": "/contacts/17", "status": 429, "retry_after": 1,
//      "delay_ms": 0, "count": 1, "error": "..."}; method and path are optional filters
//     (path a prefix), count -1 is every matching request; status 0 only delays;
//   * logs every request as one JSON line {"t": epoch ms, "method", "url", "status"} to
//     the log file, so tests measure retries and batch sizes from what the server saw.
// Usage: node crm_server.js PORT DATA_FILE TOKEN LOG_FILE
'use strict';
const fs = require('fs');
const jsonServer = require('json-server');

const [port, dataFile, token, logFile] = process.argv.slice(2);
if (!port || !dataFile || !token || !logFile) {
  console.error('usage: node crm_server.js PORT DATA_FILE TOKEN LOG_FILE');
  process.exit(2);
}

const app = jsonServer.create();
let rules = [];

function log(req, status) {
  fs.appendFileSync(logFile, JSON.stringify({
    t: Date.now(), method: req.method, url: req.originalUrl, status,
  }) + '\n');
}

app.post('/__faults', jsonServer.bodyParser, (req, res) => {
  rules = Array.isArray(req.body) ? req.body : [];
  res.json({ rules: rules.length });
});

app.use((req, res, next) => {
  res.on('finish', () => log(req, res.statusCode));
  if (req.get('Authorization') !== 'Bearer ' + token) {
    res.status(401).json({ error: 'invalid bearer token' });
    return;
  }
  const rule = rules.find(r => r.count !== 0 &&
    (!r.method || r.method === req.method) &&
    (!r.path || req.path.startsWith(r.path)));
  if (!rule) {
    next();
    return;
  }
  if (rule.count > 0) rule.count--;
  setTimeout(() => {
    if (!rule.status) {
      next();
      return;
    }
    if (rule.retry_after !== undefined) res.set('Retry-After', String(rule.retry_after));
    res.status(rule.status).json({ error: rule.error || 'injected ' + rule.status });
  }, rule.delay_ms || 0);
});

// A test that dies (a Criterion timeout) must not leave its CRM behind.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 200).unref();

// The data file's contents, kept in memory: json-server would rewrite the whole file on
// every write, which makes a 10,000-contact demo quadratic.
app.use(jsonServer.router(JSON.parse(fs.readFileSync(dataFile, 'utf8'))));
app.listen(Number(port), '127.0.0.1', () => {
  console.log('crm_server: listening on ' + port);
});
