// Unit tests of static/js/stream.js: the same bytes split anywhere give the same events.
import assert from "node:assert/strict";
import { test } from "node:test";

import { readEvents, StreamDataError } from "../../static/js/stream.js";

const STREAM = new TextEncoder().encode(
  ": stream open\r\n\r\n" +
    'id: 0\r\nevent: response.created\r\ndata: {"type":"response.created","response_id":"resp_1","model":"m"}\r\n\r\n' +
    'id: 4\nevent: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"滋賀県は"}\n\n' +
    ": ping\n\n" +
    'id: 5\revent: response.output_text.delta\rdata: {"type":"response.output_text.delta","delta":"琵琶湖🌊"}\r\r' +
    'id: 9\nevent: response.completed\ndata: {"type":"response.completed","response_id":"resp_1","status":"completed"}\n\n',
);

function bodyOf(pieces) {
  return new ReadableStream({
    start(controller) {
      for (const piece of pieces) controller.enqueue(piece);
      controller.close();
    },
  });
}

async function collect(pieces) {
  const events = [];
  const { terminal } = await readEvents(bodyOf(pieces), (event) => events.push(event));
  return { events, terminal };
}

const whole = await collect([STREAM]);

test("whole stream: events, ids, text and the terminal event", () => {
  assert.deepEqual(
    whole.events.map((event) => [event.type, event.id]),
    [
      ["response.created", "0"],
      ["response.output_text.delta", "4"],
      ["response.output_text.delta", "5"],
      ["response.completed", "9"],
    ],
  );
  const text = whole.events.filter((e) => e.type === "response.output_text.delta").map((e) => e.data.delta);
  assert.equal(text.join(""), "滋賀県は琵琶湖🌊");
  assert.equal(whole.terminal.data.status, "completed");
});

test("split at every position (inside UTF-8 characters, events, CR LF) gives the same events", async () => {
  for (let cut = 1; cut < STREAM.length; cut++) {
    const split = await collect([STREAM.slice(0, cut), STREAM.slice(cut)]);
    assert.deepEqual(split, whole, `cut at byte ${cut}`);
  }
});

test("byte by byte gives the same events", async () => {
  const pieces = Array.from(STREAM, (byte) => new Uint8Array([byte]));
  assert.deepEqual(await collect(pieces), whole);
});

test("comments and heartbeats are not events", async () => {
  const { events, terminal } = await collect([new TextEncoder().encode(": stream open\n\n: ping\n\n: ping\n\n")]);
  assert.deepEqual(events, []);
  assert.equal(terminal, null);
});

test("a stream cut before its terminal event is reported as cut", async () => {
  const text = new TextDecoder().decode(STREAM);
  const cut = new TextEncoder().encode(text.slice(0, text.indexOf("id: 9"))).length;
  const { events, terminal } = await collect([STREAM.slice(0, cut)]);
  assert.equal(terminal, null);
  assert.equal(events.at(-1).type, "response.output_text.delta");
});

test("an error event is terminal", async () => {
  const bytes = new TextEncoder().encode('event: error\ndata: {"type":"error","code":"upstream_timeout","message":"m"}\n\n');
  const { terminal } = await collect([bytes]);
  assert.equal(terminal.data.code, "upstream_timeout");
});

test("data that is not JSON rejects as such, not as a failed read", async () => {
  await assert.rejects(collect([new TextEncoder().encode("data: {oops\n\n")]), StreamDataError);
});

test("a failing read rejects", async () => {
  const body = new ReadableStream({
    pull(controller) {
      controller.error(new TypeError("network error"));
    },
  });
  await assert.rejects(readEvents(body, () => {}), (error) => /network error/.test(error.message) && !(error instanceof StreamDataError));
});
