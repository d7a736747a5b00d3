// Unit tests of the page's small pure modules.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Conversation } from "../../static/js/conversation.js";
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

test("the conversation sends earlier exchanges back", () => {
  const conversation = new Conversation();
  assert.deepEqual(conversation.inputFor("滋賀は？"), [{ role: "user", content: "滋賀は？" }]);
  conversation.remember("滋賀は？", "琵琶湖があります。");
  assert.deepEqual(conversation.inputFor("京都は？"), [
    { role: "user", content: "滋賀は？" },
    { role: "assistant", content: "琵琶湖があります。" },
    { role: "user", content: "京都は？" },
  ]);
  conversation.clear();
  assert.equal(conversation.inputFor("x").length, 1);
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
