// Load test of the payment proxy, after the official Rinha de Backend 2025 test (SPEC §5).
//
// Everything comes from the JSON file named by BENCH_CONFIG (written by `rinha bench`):
// addresses, load shape, the processors' schedule, timeouts, bucket sizes, the summary path.
// Only k6 built-ins are used. Scoring is done afterwards in Python from the summary file that
// handleSummary writes; details (each check, each schedule switch) go to the log as `BENCH {json}`.
//
// A payment costs k6 as little as the official script's: one http.post, and its
// `<start ms> <duration ms> <status>` appended to a per-VU buffer that is logged as one
// `P ...` line per C.log_batch payments, from which Python derives the counts and the
// per-second series. No custom metric is touched per request and no threshold (submetric) is
// declared: per-bucket Trends, per-request Counters, `exec.scenario` and threshold submetrics
// all cost k6 CPU on the cores the backend uses, and inflated the p99 it measured; so did one
// log line per payment (bench/README.md has the A/B runs).

import http from 'k6/http';
import exec from 'k6/execution';
import { sleep } from 'k6';
import { Counter, Gauge } from 'k6/metrics';

const C = JSON.parse(open(__ENV.BENCH_CONFIG));

const JSON_HEADERS = { 'Content-Type': 'application/json' };
const ADMIN_HEADERS = { 'Content-Type': 'application/json', 'X-Rinha-Token': C.token };
const TIMEOUT = `${C.timeout_ms}ms`;
const PROCESSORS = ['default', 'fallback'];
const PP_URL = { default: C.default_url, fallback: C.fallback_url };

const checks = new Counter('bench_checks');
const inconsistencies = new Counter('bench_inconsistencies');
const checkErrors = new Counter('bench_check_errors');
const t0Gauge = new Gauge('bench_t0_ms');
const phasesApplied = new Counter('bench_phases_applied');
const phaseErrors = new Counter('bench_phase_errors');
// every request that is not a payment (counted as it is sent), so that Python can tell the
// payments in k6's http_reqs count and check that each of them made it into the log
const otherRequests = new Counter('bench_other_requests');

const PAYMENTS_URL = `${C.url}/payments`;
const PAYMENT_PARAMS = {
  headers: JSON_HEADERS,
  timeout: TIMEOUT,
  responseType: 'none',
  tags: { name: 'POST /payments' },
};

// results of the final summaries, as gauges so that handleSummary sees them
const FINAL = {};
for (const who of ['our', 'pp']) {
  for (const p of PROCESSORS) {
    for (const f of ['requests', 'amount']) {
      FINAL[`${who}_${p}_${f}`] = new Gauge(`bench_final_${who}_${p}_${f}`);
    }
  }
}
const finalOk = new Gauge('bench_final_ok');

function log(kind, fields) {
  console.log('BENCH ' + JSON.stringify(Object.assign({ kind: kind, t: Date.now() }, fields)));
}

function iso(ms) {
  return new Date(ms).toISOString();
}

function paymentsScenario() {
  const grace = `${C.grace_s}s`;
  if (C.mode === 'rate') {
    return {
      executor: 'constant-arrival-rate',
      exec: 'payment',
      rate: C.rate,
      timeUnit: '1s',
      duration: `${C.duration_s}s`,
      preAllocatedVUs: C.pre_vus,
      maxVUs: C.max_vus,
      gracefulStop: grace,
    };
  }
  return {
    executor: 'ramping-vus',
    exec: 'payment',
    startVUs: 1,
    stages: [{ duration: `${C.duration_s}s`, target: C.vus }],
    gracefulRampDown: grace,
    gracefulStop: grace,
  };
}

function buildScenarios() {
  const s = { payments: paymentsScenario() };
  if (C.checks > 0) {
    s.consistency = {
      executor: 'per-vu-iterations',
      exec: 'consistency',
      vus: 1,
      iterations: C.checks,
      maxDuration: `${C.duration_s + C.grace_s + 5}s`,
      gracefulStop: `${C.grace_s}s`,
    };
  }
  s.schedule = {
    executor: 'per-vu-iterations',
    exec: 'applySchedule',
    vus: 1,
    iterations: 1,
    maxDuration: `${C.duration_s + C.grace_s + 5}s`,
  };
  return s;
}

export const options = {
  scenarios: buildScenarios(),
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(50)', 'p(90)', 'p(99)', 'p(99.9)', 'count'],
  discardResponseBodies: true,
  setupTimeout: '30s',
  teardownTimeout: '30s',
};

function summaryQuery(fromMs, toMs) {
  return `?from=${iso(fromMs)}&to=${iso(toMs)}`;
}

// [ours, default, fallback] GET requests for the same window, for http.batch
function summaryBatch(fromMs, toMs, timeout) {
  const q = summaryQuery(fromMs, toMs);
  const p = { timeout: timeout, responseType: 'text' };
  return [
    ['GET', `${C.url}/payments-summary${q}`, null,
      Object.assign({ tags: { name: 'GET /payments-summary', target: 'ours' } }, p)],
    ...PROCESSORS.map((proc) => ['GET', `${PP_URL[proc]}/admin/payments-summary${q}`, null,
      Object.assign({ headers: ADMIN_HEADERS, tags: { name: `GET ${proc} /admin/payments-summary`, target: 'processor' } }, p)]),
  ];
}

function parseBody(res) {
  if (res.status !== 200) return null;
  try {
    return JSON.parse(res.body);
  } catch (e) {
    return null;
  }
}

function configure(proc, delay, failure) {
  const base = PP_URL[proc];
  const p = { headers: ADMIN_HEADERS, timeout: '5s', responseType: 'text', tags: { target: 'processor' } };
  const out = [];
  if (delay !== null) {
    out.push(['PUT', `${base}/admin/configurations/delay`, JSON.stringify({ delay: delay }),
      Object.assign({}, p, { tags: { name: `PUT ${proc} delay`, target: 'processor' } })]);
  }
  if (failure !== null) {
    out.push(['PUT', `${base}/admin/configurations/failure`, JSON.stringify({ failure: failure }),
      Object.assign({}, p, { tags: { name: `PUT ${proc} failure`, target: 'processor' } })]);
  }
  return out;
}

export function setup() {
  const first = C.schedule[0];
  const reqs = [];
  for (const proc of PROCESSORS) {
    reqs.push(...configure(proc, first[proc].delay, first[proc].failure));
    reqs.push(['POST', `${PP_URL[proc]}/admin/purge-payments`, null,
      { headers: ADMIN_HEADERS, timeout: '5s', responseType: 'text', tags: { name: `POST ${proc} purge`, target: 'processor' } }]);
  }
  otherRequests.add(reqs.length);
  const res = http.batch(reqs);
  const bad = res.filter((r) => r.status !== 200).map((r) => `${r.request.method} ${r.url}: ${r.status} ${r.error}`);
  if (bad.length) {
    exec.test.abort(`cannot reset the processors: ${bad.join('; ')}`);
  }
  otherRequests.add(1);
  const purge = http.post(`${C.url}/purge-payments`, null,
    { timeout: '5s', tags: { name: 'POST /purge-payments', target: 'ours' } });
  if (purge.status < 200 || purge.status >= 300) {
    log('warning', { what: 'purge-payments', status: purge.status, error: purge.error });
  }
  return { t0: Date.now() };
}

// This VU's payments not logged yet: ` <start ms> <duration ms> <status>` each.
let unlogged = '';
let unloggedCount = 0;
// From this epoch ms on, each payment is logged at once, so that no VU ends the run with
// payments in its buffer: in the ramp every VU posts about once a second, and at a constant
// rate k6 hands the idle VUs out in turn, each again within max_vus / rate s (< 2 s).
// Python still checks the count against k6's http_reqs (Measured.unlogged).
let logEachFrom = 0;

export function payment() {
  const start = Date.now();
  const body = JSON.stringify({ correlationId: crypto.randomUUID(), amount: C.amount });
  const res = http.post(PAYMENTS_URL, body, PAYMENT_PARAMS);
  const ms = res.status === 0 ? Date.now() - start : res.timings.duration;
  unlogged += ` ${start} ${ms} ${res.status}`;
  unloggedCount += 1;
  if (logEachFrom === 0) logEachFrom = exec.scenario.startTime + C.log_each_from_ms;
  if (unloggedCount >= C.log_batch || start >= logEachFrom) {
    console.log('P' + unlogged);
    unlogged = '';
    unloggedCount = 0;
  }
  if (C.mode !== 'rate') sleep(1);
}

function count(summary, proc) {
  const s = summary && summary[proc];
  return s && typeof s.totalRequests === 'number' ? s.totalRequests : null;
}

export function consistency() {
  const start = exec.scenario.startTime;
  t0Gauge.add(start);
  const due = start + (exec.vu.iterationInScenario + 1) * C.check_interval_s * 1000;
  const wait = due - Date.now();
  if (wait > 0) sleep(wait / 1000);
  const now = Date.now();
  otherRequests.add(3);
  const res = http.batch(summaryBatch(now - C.check_from_ms, now - C.check_to_ms, TIMEOUT));
  const ours = parseBody(res[0]);
  const pp = { default: parseBody(res[1]), fallback: parseBody(res[2]) };
  checks.add(1);
  const rec = { at_s: (now - start) / 1000, status: res.map((r) => r.status), ms: res.map((r) => r.timings.duration) };
  let bad = false;
  if (ours === null) {
    bad = true; // we failed to answer: the official checker cannot compare, so neither do we
    rec.ours_error = res[0].error || `status ${res[0].status}`;
  }
  for (const proc of PROCESSORS) {
    const mine = count(ours, proc);
    if (pp[proc] === null || typeof pp[proc].totalRequests !== 'number') {
      checkErrors.add(1);
      rec[`${proc}_error`] = res[PROCESSORS.indexOf(proc) + 1].error || 'bad answer';
      continue;
    }
    rec[proc] = { ours: mine, theirs: pp[proc].totalRequests };
    if (mine !== null && mine !== pp[proc].totalRequests) bad = true;
  }
  if (bad) inconsistencies.add(1);
  rec.inconsistent = bad;
  log('check', rec);
}

export function applySchedule() {
  const start = exec.scenario.startTime;
  t0Gauge.add(start);
  for (let i = 1; i < C.schedule.length; i++) {
    const phase = C.schedule[i];
    const prev = C.schedule[i - 1];
    const wait = start + phase.at_s * 1000 - Date.now();
    if (wait > 0) sleep(wait / 1000);
    const reqs = [];
    for (const proc of PROCESSORS) {
      const now = phase[proc];
      const was = prev[proc];
      reqs.push(...configure(proc, now.delay !== was.delay ? now.delay : null,
        now.failure !== was.failure ? now.failure : null));
    }
    otherRequests.add(reqs.length);
    const res = reqs.length ? http.batch(reqs) : [];
    const errors = res.filter((r) => r.status !== 200).length;
    phasesApplied.add(1);
    if (errors) phaseErrors.add(errors);
    log('phase', { index: i, label: phase.label, at_s: (Date.now() - start) / 1000, errors: errors });
  }
}

export function teardown() {
  // In the judged shape every VU sleeps 1 s after its last POST before the run ends; the
  // constant-rate stress has no such pause, so wait the same 1 s before the final summary.
  if (C.mode === 'rate') sleep(1);
  const now = Date.now();
  otherRequests.add(3);
  const res = http.batch(summaryBatch(now - C.summary_window_s * 1000, now, '10s'));
  const ours = parseBody(res[0]);
  const pp = { default: parseBody(res[1]), fallback: parseBody(res[2]) };
  let ok = 1;
  for (const proc of PROCESSORS) {
    for (const [who, s] of [['our', ours], ['pp', pp[proc]]]) {
      const line = who === 'our' ? s && s[proc] : s;
      if (!line || typeof line.totalRequests !== 'number') {
        ok = 0;
        continue;
      }
      FINAL[`${who}_${proc}_requests`].add(line.totalRequests);
      FINAL[`${who}_${proc}_amount`].add(line.totalAmount);
    }
  }
  finalOk.add(ok);
  log('final', { ours: ours, default: pp.default, fallback: pp.fallback, status: res.map((r) => r.status) });
}

export function handleSummary(data) {
  return { [C.summary_path]: JSON.stringify(data) };
}
