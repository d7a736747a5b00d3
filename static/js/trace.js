// W3C trace context for the relay's requests: one trace per question (its POST, every resume and
// its cancel), each request a span of its own, so Application Insights shows a question, its
// resumes on any instance and its model calls as one operation. No DOM, no fetch.

const TRACE_ID = /^[0-9a-f]{32}$/;

/** A new trace id: 16 random bytes as 32 lower-case hex digits (never all zero, which means none). */
export function newTraceId() {
  const id = randomHex(16);
  return /^0+$/.test(id) ? newTraceId() : id;
}

/** Whether `value` is a trace id this page could have made (a saved one is checked before it is sent). */
export function isTraceId(value) {
  return typeof value === "string" && TRACE_ID.test(value) && !/^0+$/.test(value);
}

/** The `traceparent` header of one request in trace `traceId`: version 00, a new span id, sampled. */
export function traceparent(traceId) {
  let span = randomHex(8);
  while (/^0+$/.test(span)) span = randomHex(8);
  return `00-${traceId}-${span}-01`;
}

function randomHex(bytes) {
  const values = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(values, (value) => value.toString(16).padStart(2, "0")).join("");
}
