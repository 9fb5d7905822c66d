// k6 load test, the same shape as the original demo's: 15 virtual users for 60 s, each sending
// GET to the downstream and thinking 0.1 s between requests.
//
//   TARGET_URL=http://localhost:8000/ k6 run loadtest/test.js
//
// TARGET_URL (default http://localhost:8000/) is the downstream: Docker Desktop's LoadBalancer,
// a NodePort, or `gracelab cluster up`. VUS and DURATION override 15 and 60s.
//
// A request is an error when the HTTP status is not 200 OR the JSON body's "status" is not "ok",
// so a failure can never pass as a success. retry_count sums the downstream's "retries" field.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter, Rate } from 'k6/metrics';

const target = __ENV.TARGET_URL || 'http://localhost:8000/';

export const options = {
  vus: Number(__ENV.VUS || 15),
  duration: __ENV.DURATION || '60s',
};

const errors = new Rate('errors');
const retryCount = new Counter('retry_count');
// Failed requests by the downstream's "kind" of upstream failure (refused, eof, timeout, ...).
const upstreamFailures = new Counter('upstream_failures');

export default function () {
  const res = http.get(target, { timeout: '10s' });
  let body = null;
  try {
    body = res.json();
  } catch (e) {
    body = null; // no body (connection error) or not JSON
  }
  const ok = check(res, {
    'status is 200': (r) => r.status === 200,
    'body status is ok': () => body !== null && body.status === 'ok',
  });
  errors.add(!ok);
  if (body !== null && typeof body.retries === 'number') {
    retryCount.add(body.retries);
  }
  if (!ok) {
    const kind = body !== null && typeof body.kind === 'string' ? body.kind : 'no_body';
    upstreamFailures.add(1, { kind: kind, status: String(res.status) });
  }
  sleep(0.1);
}
