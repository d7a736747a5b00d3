// Unit tests of resume.js: the resume cursor, the pending answer a reload continues, the wait.
import assert from "node:assert/strict";
import { test } from "node:test";

import { clearPending, Progress, savePending, takePending, wait } from "../../static/js/resume.js";

class MemoryStorage {
  constructor() {
    this.items = new Map();
  }
  getItem(key) {
    return this.items.has(key) ? this.items.get(key) : null;
  }
  setItem(key, value) {
    this.items.set(key, String(value));
  }
  removeItem(key) {
    this.items.delete(key);
  }
}

const created = { type: "response.created", id: "0", data: { response_id: "resp_abc" } };
const delta = (id) => ({ type: "response.output_text.delta", id: String(id), data: { delta: "x" } });

test("progress keeps the response id and the last event id, the cursor to resume after", () => {
  const progress = new Progress("滋賀は？");
  assert.equal(progress.accept(created), true);
  assert.equal(progress.accept(delta(4)), true);
  assert.equal(progress.accept(delta(9)), true);
  assert.deepEqual([progress.responseId, progress.lastId], ["resp_abc", 9]);
});

test("an event whose id is not above the last seen is refused; one without an id is always new", () => {
  const progress = new Progress("q");
  progress.accept(delta(9));
  assert.equal(progress.accept(delta(9)), false);
  assert.equal(progress.accept(delta(3)), false);
  assert.equal(progress.accept({ type: "error", id: null, data: {} }), true);
  assert.equal(progress.accept({ type: "x", id: "9a", data: {} }), true);
  assert.equal(progress.lastId, 9);
});

test("with tool rounds each response numbers its events from 0: the cursor is the current round's", () => {
  const progress = new Progress("京都は今何時？");
  progress.accept(created);
  progress.accept({ type: "tool.call", id: "6", data: {} });
  assert.equal(progress.accept({ type: "tool.result", id: null, data: {} }), true);
  const next = { type: "response.created", id: "0", data: { response_id: "resp_def" } };
  assert.equal(progress.accept(next), true);
  assert.deepEqual([progress.responseId, progress.lastId], ["resp_def", 0]);
  assert.equal(progress.accept(delta(4)), true); // below the first round's 6, but a new round
  assert.equal(progress.accept(next), false); // the same round's start again: shown already
  assert.equal(progress.accept(delta(4)), false);
  assert.deepEqual([progress.responseId, progress.lastId], ["resp_def", 4]);
});

test("a pending answer is taken once, in its question's trace; anything malformed is no pending answer", () => {
  const storage = new MemoryStorage();
  const progress = new Progress("滋賀は？");
  progress.accept(created);
  savePending(storage, progress);
  assert.deepEqual(takePending(storage), { question: "滋賀は？", responseId: "resp_abc", traceId: progress.traceId });
  assert.equal(takePending(storage), null);
  storage.setItem("pendingAnswer", JSON.stringify({ question: "q", responseId: "resp_abc", traceId: "bad" }));
  const { traceId } = takePending(storage); // a trace of its own, rather than a header the relay would refuse
  assert.match(traceId, /^[0-9a-f]{32}$/);
  storage.setItem("pendingAnswer", "{not json");
  assert.equal(takePending(storage), null);
  storage.setItem("pendingAnswer", JSON.stringify({ question: "q", responseId: "../../admin" }));
  assert.equal(takePending(storage), null);
  savePending(storage, progress);
  clearPending(storage);
  assert.equal(takePending(storage), null);
});

test("a wait ends early, rejected, when its signal is aborted", async () => {
  const controller = new AbortController();
  const waiting = wait(60, controller.signal);
  controller.abort(new Error("stopped"));
  await assert.rejects(waiting, /stopped/);
  await assert.rejects(wait(0, controller.signal), /stopped/);
  await wait(0, new AbortController().signal);
});
