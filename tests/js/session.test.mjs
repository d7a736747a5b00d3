// Unit tests of static/js/session.js: an answer's session against scripted responses, with
// its waits recorded instead of slept, so the reconnection policy and Stop can be checked.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Progress } from "../../static/js/resume.js";
import { AnswerSession } from "../../static/js/session.js";

const encoder = new TextEncoder();
const frame = (id, type, data) => `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
const created = frame(0, "response.created", { response_id: "resp_abc" });
const delta = (id, text) => frame(id, "response.output_text.delta", { delta: text });
const completed = (id) => frame(id, "response.completed", { response_id: "resp_abc", status: "completed" });

/** A fetch Response whose body is these frames, then a clean end or (cut) a broken read. */
function reply(frames, { cut = false, status = 200, onCancel = () => {} } = {}) {
  const pieces = [...frames];
  const body = new ReadableStream({
    pull(controller) {
      // One piece a read; the error comes only after the last (an error drops what is queued).
      if (pieces.length > 0) controller.enqueue(encoder.encode(pieces.shift()));
      else if (cut) controller.error(new TypeError("network error"));
      else controller.close();
    },
    cancel: onCancel,
  });
  return new Response(body, { status, headers: { "content-type": "text/event-stream" } });
}

/** The request that starts a stream: it sends `created`, then, as fetch's body does, errors when the request is aborted. */
async function openedUntilAborted(signal) {
  const body = new ReadableStream({
    start(controller) {
      controller.enqueue(encoder.encode(created));
      signal.addEventListener("abort", () => controller.error(signal.reason));
    },
  });
  return new Response(body);
}

/** A session whose resumes answer from `resumes` in turn (a function: it throws, as offline); records what it did. */
function session(first, resumes = [], options = {}) {
  const seen = { events: [], states: [], sleeps: [], resumedAfter: [], cancelled: [] };
  const answer = new AnswerSession({
    progress: new Progress("滋賀は？"),
    resumable: true,
    open: typeof first === "function" ? first : async () => first,
    resume: async (responseId, after) => {
      seen.resumedAfter.push(after);
      const next = resumes.shift();
      if (next === undefined) throw new TypeError("offline");
      return typeof next === "function" ? next() : next;
    },
    cancel: async (responseId) => seen.cancelled.push(responseId),
    onEvent: (event) => seen.events.push(`${event.id}:${event.data.delta ?? event.type}`),
    onState: (state) => seen.states.push(state),
    sleep: async (seconds, signal) => {
      seen.sleeps.push(seconds);
      if (signal.aborted) throw signal.reason;
    },
    ...options,
  });
  return { answer, seen };
}

test("a cut answer is resumed after its last event, and events sent again are dropped", async () => {
  const first = reply([created, delta(1, "滋"), delta(2, "賀")], { cut: true });
  const again = reply([delta(2, "賀"), delta(1, "滋"), delta(3, "県"), completed(4)]); // a server repeating itself
  const { answer, seen } = session(first, [again]);
  const outcome = await answer.run();
  assert.equal(outcome.kind, "ended");
  assert.equal(outcome.terminal.data.status, "completed");
  assert.deepEqual(seen.events, ["0:response.created", "1:滋", "2:賀", "3:県", "4:response.completed"]);
  assert.deepEqual(seen.resumedAfter, [2]);
  assert.deepEqual(seen.states, ["streaming", "reconnecting", "streaming", "done"]);
  assert.equal(answer.state, "done");
});

test("reconnections wait longer each time and give up; one that brings events starts the wait over", async () => {
  const cutAfter = (id) => () => reply([delta(id, "x")], { cut: true });
  const { answer, seen } = session(reply([created], { cut: true }), [
    reply([], { cut: true }), // brings nothing
    cutAfter(1), // brings an event: the backoff starts over
  ]);
  const outcome = await answer.run();
  assert.equal(outcome.kind, "cut");
  assert.deepEqual(seen.sleeps, [0.5, 1, 0.5, 1, 2, 4]);
  assert.deepEqual(seen.resumedAfter, [0, 0, 1, 1, 1, 1]);
});

test("a resume the server refuses ends the answer with its response", async () => {
  const { answer } = session(reply([created], { cut: true }), [reply([], { status: 404 })]);
  const outcome = await answer.run();
  assert.equal(outcome.kind, "resumeRefused");
  assert.equal(outcome.response.status, 404);
});

test("Stop before the response has an id aborts the request at once and cancels nothing itself", async () => {
  let aborted = null;
  const hanging = (signal) =>
    new Promise((resolve, reject) => {
      signal.addEventListener("abort", () => {
        aborted = signal.reason;
        reject(signal.reason);
      });
    });
  const { answer, seen } = session(hanging);
  const running = answer.run();
  assert.equal(answer.state, "opening");
  answer.stop();
  assert.equal((await running).kind, "stopped");
  assert.ok(aborted !== null, "the request was aborted");
  assert.deepEqual(seen.cancelled, []); // the server cancels a response whose id never reached us
  assert.equal(answer.state, "done");
  answer.stop(); // stopping a finished answer does nothing
  assert.deepEqual(seen.states, ["stopping", "done"]);
});

test("Stop once the response has an id cancels it on the server and aborts the stream", async () => {
  const { answer, seen } = session(openedUntilAborted, [], {
    onEvent: (event) => {
      if (event.type === "response.created") answer.stop();
    },
  });
  assert.equal((await answer.run()).kind, "stopped");
  assert.deepEqual(seen.cancelled, ["resp_abc"]);
  assert.ok(answer.signal.aborted);
});

test("an event that is not JSON ends the answer and cancels the stream", async () => {
  let cancelled = false;
  const first = reply([created, "id: 1\nevent: response.output_text.delta\ndata: {not json\n\n", delta(2, "x")], {
    onCancel: () => {
      cancelled = true;
    },
  });
  const { answer, seen } = session(first);
  assert.equal((await answer.run()).kind, "badData");
  assert.ok(cancelled, "the body was cancelled, so the server's stream ends");
  assert.deepEqual(seen.resumedAfter, []);
});

test("without resumable streams a cut is final", async () => {
  const { answer, seen } = session(reply([created, delta(1, "x")], { cut: true }), [], { resumable: false });
  assert.equal((await answer.run()).kind, "cut");
  assert.deepEqual(seen.resumedAfter, []);
  answer.abandon();
  assert.deepEqual(seen.cancelled, []);
});

test("a stream the server hands off at its time limit is continued at once, without a wait", async () => {
  const handOff = (after) => `event: stream.resume\ndata: ${JSON.stringify({ type: "stream.resume", response_id: "resp_abc", after })}\n\n`;
  const first = reply([created, delta(1, "滋"), handOff(1)]);
  const second = reply([delta(2, "賀"), handOff(2)]);
  const third = reply([delta(3, "県"), completed(4)]);
  const { answer, seen } = session(first, [second, third]);
  const outcome = await answer.run();
  assert.equal(outcome.kind, "ended");
  assert.deepEqual(seen.sleeps, []);
  assert.deepEqual(seen.resumedAfter, [1, 2]);
  assert.deepEqual(
    seen.events.filter((event) => !event.includes("stream.resume")),
    ["0:response.created", "1:滋", "2:賀", "3:県", "4:response.completed"],
  );
  assert.deepEqual(seen.states, ["streaming", "streaming", "streaming", "done"]);
});

test("the page gives up after three hand-offs in a row that bring no new event", async () => {
  const handOff = `event: stream.resume\ndata: ${JSON.stringify({ type: "stream.resume", response_id: "resp_abc", after: 1 })}\n\n`;
  const first = reply([created, delta(1, "滋"), handOff]);
  const idle = () => reply([delta(1, "滋"), handOff]); // only what the page has already, then a hand-off
  const { answer, seen } = session(first, [idle, idle, idle, idle]);
  const outcome = await answer.run();
  assert.equal(outcome.kind, "stalled");
  assert.deepEqual(seen.resumedAfter, [1, 1, 1]);
  assert.deepEqual(seen.sleeps, []);
});

test("Stop cancels a named response in every mode, and a final error cancels it where it may still run", async () => {
  const stopping = session(openedUntilAborted, [], { resumable: false });
  stopping.answer.onEvent = (event) => event.type === "response.created" && stopping.answer.stop();
  assert.equal((await stopping.answer.run()).kind, "stopped");
  assert.deepEqual(stopping.seen.cancelled, ["resp_abc"]);

  const failed = frame(2, "error", { code: "server_error", message: "boom" });
  const erring = session(reply([created, delta(1, "x"), failed]));
  assert.equal((await erring.answer.run()).terminal.type, "error");
  assert.deepEqual(erring.seen.cancelled, ["resp_abc"]);
});
