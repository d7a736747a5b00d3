// Unit tests of the page's small pure modules.
import assert from "node:assert/strict";
import { test } from "node:test";

import { addressOf, conversationIn } from "../../static/js/address.js";
import { retryAfterSeconds } from "../../static/js/api.js";
import { Conversation, cutToChars, DEFAULT_LIMITS } from "../../static/js/conversation.js";
import { chooseLanguage, setLanguage, t } from "../../static/js/i18n.js";
import { isSendKey } from "../../static/js/keyboard.js";

test("Enter sends; Shift+Enter and every IME case do not", () => {
  const idle = { composing: false };
  assert.equal(isSendKey({ key: "Enter" }, idle), true);
  assert.equal(isSendKey({ key: "Enter", shiftKey: true }, idle), false);
  assert.equal(isSendKey({ key: "Enter", isComposing: true }, idle), false);
  assert.equal(isSendKey({ key: "Enter", keyCode: 229 }, idle), false);
  assert.equal(isSendKey({ key: "Enter" }, { composing: true }), false);
  assert.equal(isSendKey({ key: "a" }, idle), false);
});

const exchange = (n) => [
  { role: "user", content: `q${n}` },
  { role: "assistant", content: `a${n}` },
];

test("the conversation continues from the last response when the server keeps responses", () => {
  const conversation = new Conversation();
  assert.deepEqual(conversation.request("滋賀は？"), { body: { input: [{ role: "user", content: "滋賀は？" }] }, omitted: 0, sent: 0 });
  conversation.remember("滋賀は？", "琵琶湖があります。", "resp_1");
  assert.deepEqual(conversation.request("京都は？").body, {
    input: [{ role: "user", content: "京都は？" }],
    previous_response_id: "resp_1",
  });
  conversation.remember("京都は？", "", "resp_2"); // a blank answer is not kept, its response is
  assert.equal(conversation.request("x").body.previous_response_id, "resp_2");
  conversation.clear();
  assert.deepEqual(conversation.request("x").body, { input: [{ role: "user", content: "x" }] });
});

test("in a kept conversation the question names it, and nothing else goes back", () => {
  const conversation = new Conversation();
  conversation.remember("滋賀は？", "琵琶湖があります。", "resp_1");
  conversation.conversationId = "conv_1";
  for (const chain of [true, false]) {
    assert.deepEqual(conversation.request("京都は？", { chain }).body, {
      input: [{ role: "user", content: "京都は？" }],
      conversation_id: "conv_1",
    });
  }
  const decided = [{ approval_request_id: "mcpr_1", approve: true }];
  assert.deepEqual(conversation.approvals("resp_1", decided), { conversation_id: "conv_1", approvals: decided });
  assert.deepEqual(conversation.regenerate("resp_1"), { conversation_id: "conv_1", regenerate: "resp_1" }); // no input
  conversation.clear();
  assert.equal(conversation.conversationId, null);
  assert.deepEqual(conversation.approvals("resp_1", decided), { previous_response_id: "resp_1", approvals: decided });
});

test("the address names a conversation, and nothing else", () => {
  assert.equal(conversationIn("#/c/conv_abc-1_2"), "conv_abc-1_2");
  assert.equal(conversationIn(addressOf("conv_x")), "conv_x");
  for (const other of ["", "#", "#/", "#/c/", "#/c/resp_1", "#/c/conv_a/b", "#/c/conv_<img>", "#c/conv_a"]) {
    assert.equal(conversationIn(other), null, other);
  }
  assert.equal(addressOf(null), "#/");
});

test("without chaining, the history goes back whole while it fits", () => {
  const conversation = new Conversation();
  for (const n of [1, 2]) conversation.remember(`q${n}`, `a${n}`, `resp_${n}`);
  assert.deepEqual(conversation.request("q3", { chain: false }), {
    body: { input: [...exchange(1), ...exchange(2), { role: "user", content: "q3" }] },
    omitted: 0,
    sent: 2,
  });
});

test("the oldest exchanges are left out first to stay within the message limit", () => {
  const conversation = new Conversation();
  for (let n = 0; n < 40; n += 1) conversation.remember(`q${n}`, `a${n}`, `resp_${n}`);
  const { body, omitted, sent } = conversation.request("q40", { chain: false, limits: { ...DEFAULT_LIMITS } });
  assert.equal(body.input.length, 63); // 31 exchanges and the question: at most 64 messages
  assert.deepEqual(body.input.slice(0, 2), exchange(9));
  assert.deepEqual([omitted, sent], [9, 31]);
  const five = conversation.request("q40", { chain: false, limits: { ...DEFAULT_LIMITS, max_messages: 5 } });
  assert.deepEqual(five.body.input, [...exchange(38), ...exchange(39), { role: "user", content: "q40" }]);
});

test("the body stays within the byte limit, counted as UTF-8 JSON", () => {
  const conversation = new Conversation();
  const answer = "琵".repeat(100); // 300 bytes
  for (let n = 0; n < 10; n += 1) conversation.remember(`q${n}`, answer, null);
  const size = (input) => new TextEncoder().encode(JSON.stringify({ input })).length;
  for (const max_body_bytes of [400, 1000, 1100]) {
    const { body, omitted } = conversation.request("q10", { chain: false, limits: { ...DEFAULT_LIMITS, max_body_bytes } });
    assert.ok(size(body.input) <= max_body_bytes, `${max_body_bytes}`);
    assert.ok(omitted > 0);
    const oneMore = [{ role: "user", content: `q${omitted - 1}` }, { role: "assistant", content: answer }, ...body.input];
    assert.ok(size(oneMore) > max_body_bytes, `${max_body_bytes}: one more exchange would have fitted`);
  }
  const roomy = conversation.request("q10", { chain: false, limits: { ...DEFAULT_LIMITS, max_body_bytes: 5000 } });
  assert.equal(roomy.omitted, 0);
});

test("a message longer than the server takes is cut to its limit in code points", () => {
  assert.equal(cutToChars("🌊🌊🌊", 2), "🌊🌊");
  assert.equal(cutToChars("abc", 3), "abc");
  const conversation = new Conversation();
  conversation.remember("q", "🌊".repeat(50), null);
  const limits = { ...DEFAULT_LIMITS, max_message_chars: 10 };
  assert.equal(conversation.request("x", { chain: false, limits }).body.input[1].content, "🌊".repeat(10));
});

test("keep: only the latest exchanges, and no chaining (the model found the conversation too long)", () => {
  const conversation = new Conversation();
  for (let n = 0; n < 6; n += 1) conversation.remember(`q${n}`, `a${n}`, `resp_${n}`);
  const { body, omitted, sent } = conversation.request("q6", { keep: 3 });
  assert.deepEqual(body, { input: [...exchange(3), ...exchange(4), ...exchange(5), { role: "user", content: "q6" }] });
  assert.deepEqual([omitted, sent], [3, 3]);
  assert.deepEqual(conversation.request("q6", { keep: 0 }).body, { input: [{ role: "user", content: "q6" }] });
});

test("Retry-After: seconds or an HTTP date, from now", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(retryAfterSeconds("3", now), 3);
  assert.equal(retryAfterSeconds(" 120 ", now), 120);
  assert.equal(retryAfterSeconds("Thu, 01 Jan 2026 00:00:05 GMT", now), 5);
  assert.equal(retryAfterSeconds("Wed, 31 Dec 2025 23:59:00 GMT", now), 0);
  assert.equal(retryAfterSeconds(null, now), null);
  assert.equal(retryAfterSeconds("soon", now), null);
});

test("language: saved choice, then the browser's, then English", () => {
  assert.equal(chooseLanguage("en", ["ja-JP"]), "en");
  assert.equal(chooseLanguage(null, ["ja-JP", "en-US"]), "ja");
  assert.equal(chooseLanguage("xx", ["fr-FR"]), "en");
  setLanguage("ja");
  assert.equal(t("failed", { message: "m", code: "c" }), "エラー: m（c）");
  setLanguage("en");
  assert.equal(t("usage", { input: 1, output: 2, total: 3 }), "tokens: 1 in / 2 out / 3 total");
});
