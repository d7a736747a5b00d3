// Unit tests of the page's attachment rules and of questions with attachments in the conversation.
import assert from "node:assert/strict";
import { test } from "node:test";

import { attachmentLimits, contentParts, countProblem, kindOf, MAX_SIDE, scaledSize } from "../../static/js/attachments.js";
import { Conversation } from "../../static/js/conversation.js";

const photo = { name: "kyoto.jpg", kind: "image", dataUrl: "data:image/jpeg;base64,/9j/", width: 10, height: 10 };
const guide = { name: "guide.pdf", kind: "pdf", dataUrl: "data:application/pdf;base64,JVBERi0=" };

test("an image is scaled to at most 1,568 px on its long side, never below 1 px", () => {
  assert.equal(MAX_SIDE, 1568);
  assert.deepEqual(scaledSize(4000, 3000), { width: 1568, height: 1176 });
  assert.deepEqual(scaledSize(3000, 4000), { width: 1176, height: 1568 });
  assert.deepEqual(scaledSize(800, 600), { width: 800, height: 600 }); // never enlarged
  assert.deepEqual(scaledSize(100000, 1), { width: 1568, height: 1 });
});

test("the server's limits are taken when given, 0 attachments meaning none", () => {
  assert.deepEqual(attachmentLimits(null), { max_attachments: 4, max_attachment_bytes: 10485760 });
  assert.deepEqual(attachmentLimits({ max_attachments: 0 }), { max_attachments: 0, max_attachment_bytes: 10485760 });
  assert.deepEqual(attachmentLimits({ max_attachments: -1, max_attachment_bytes: "x" }), attachmentLimits(null));
  const limits = attachmentLimits({ max_attachments: 2, max_attachment_bytes: 1024 });
  assert.equal(countProblem(1, 1, limits), null);
  assert.deepEqual({ ...countProblem(2, 1, limits) }, { key: "attachTooMany", values: { max: 2 } });
});

test("only PNG, JPEG, WebP, GIF and PDF can be attached", () => {
  assert.deepEqual(["image/png", "image/jpeg", "image/webp", "image/gif"].map(kindOf), ["image", "image", "image", "image"]);
  assert.equal(kindOf("application/pdf"), "pdf");
  assert.equal(kindOf("image/svg+xml"), null);
  assert.equal(kindOf("text/plain"), null);
  assert.equal(kindOf(""), null);
});

test("a question with attachments goes as content parts, its text first", () => {
  assert.deepEqual(contentParts("これは何？", [photo, guide]), [
    { type: "input_text", text: "これは何？" },
    { type: "input_image", image_url: photo.dataUrl, detail: "auto" },
    { type: "input_file", filename: "guide.pdf", file_data: guide.dataUrl },
  ]);
  assert.deepEqual(contentParts("", [photo]), [{ type: "input_image", image_url: photo.dataUrl, detail: "auto" }]);
});

test("the conversation sends a question's attachments, also in the history", () => {
  const conversation = new Conversation();
  const asked = { text: "これは？", attachments: [photo] };
  const first = conversation.request(asked).body.input[0];
  assert.deepEqual(first, { role: "user", content: contentParts("これは？", [photo]) });
  assert.deepEqual(conversation.request({ text: "滋賀は？", attachments: [] }).body.input[0], { role: "user", content: "滋賀は？" });
  conversation.remember(asked, "写真です。", "resp_1");
  const history = conversation.request("次は？", { chain: false }).body.input;
  assert.deepEqual(history[0], first);
});

test("forgetting the last exchange asks again from the context before it (Regenerate)", () => {
  const conversation = new Conversation();
  conversation.remember("q1", "a1", "resp_1");
  conversation.remember("q2", "a2", "resp_2");
  conversation.forgetLast();
  assert.deepEqual(conversation.request("q2").body, { input: [{ role: "user", content: "q2" }], previous_response_id: "resp_1" });
  assert.deepEqual(conversation.exchanges.map((exchange) => exchange.question), ["q1"]);
  conversation.forgetLast();
  assert.deepEqual(conversation.request("q1").body, { input: [{ role: "user", content: "q1" }] });
});
