// Unit tests of trace.js: the page's W3C trace context, one trace per question.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Progress } from "../../static/js/resume.js";
import { isTraceId, newTraceId, traceparent } from "../../static/js/trace.js";

const W3C = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

test("a traceparent is W3C's version 00, in the given trace, from a new span each time", () => {
  const traceId = newTraceId();
  const [first, second] = [traceparent(traceId), traceparent(traceId)];
  for (const header of [first, second]) {
    const [, trace, span] = header.match(W3C);
    assert.equal(trace, traceId);
    assert.notEqual(span, "0".repeat(16));
  }
  assert.notEqual(first, second);
});

test("each question is a new trace; a trace id is 32 lower-case hex digits, never all zero", () => {
  const ids = new Set(Array.from({ length: 100 }, () => new Progress("滋賀は？").traceId));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.equal(isTraceId(id), true);
  for (const bad of ["0".repeat(32), "A".repeat(32), "a".repeat(31), null, 42]) assert.equal(isTraceId(bad), false);
});
