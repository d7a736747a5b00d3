// Unit tests of static/js/citations.js: which URLs may become links, and where the numbers go.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Citations, outsideLinks, safeHref, utf16Offset } from "../../static/js/citations.js";

const cite = (url, end, title = "t") => ({ type: "url_citation", url, title, start_index: 0, end_index: end });
const numbered = (marked) => marked.replace(/\uE000(\d+)\uE001/g, "[$1]");

test("only absolute http(s) URLs become links", () => {
  assert.equal(safeHref("https://example.com/a?b=1#c"), "https://example.com/a?b=1#c");
  assert.equal(safeHref("HTTP://Example.COM"), "http://example.com/");
  for (const url of [
    "javascript:alert(1)",
    " JavaScript:alert(1)",
    "java\tscript:alert(1)",
    "\u0000javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "ftp://example.com/",
    "/relative",
    "//example.com/protocol-relative",
    "",
    null,
    42,
  ]) {
    assert.equal(safeHref(url), null, String(url));
  }
});

test("the API's code point offsets map to UTF-16 offsets", () => {
  assert.equal(utf16Offset("琵琶湖", 2), 2);
  assert.equal(utf16Offset("🌊湖🌊x", 3), 5);
  assert.equal(utf16Offset("abc", 10), 3);
});

test("numbers go where each citation ends, in order, one number per URL", () => {
  const citations = new Citations();
  citations.add(cite("https://a.example/", 3));
  citations.add(cite("https://b.example/", 3));
  citations.add(cite("https://a.example/", 6));
  citations.add(cite("https://a.example/", 6)); // the same again: one number there
  citations.add({ type: "file_citation", file_id: "f", index: 1 });
  citations.add(null);
  assert.equal(numbered(citations.mark("🌊湖です。🌊")), "🌊湖で[1][2]す。🌊[1]");
  assert.deepEqual(
    citations.sources.map((source) => source.href),
    ["https://a.example/", "https://b.example/"],
  );
});

test("a citation past the text so far waits at its end; a bad index means the end", () => {
  const citations = new Citations();
  citations.add(cite("https://a.example/", 100));
  citations.add({ ...cite("https://b.example/", 0), end_index: "2" });
  assert.equal(numbered(citations.mark("滋賀")), "滋賀[1][2]");
  assert.equal(numbered(citations.mark("滋賀県は琵琶湖")), "滋賀県は琵琶湖[1][2]");
});

test("the model's own marker characters stay text", () => {
  const citations = new Citations();
  citations.add(cite("https://a.example/", 1));
  assert.equal(numbered(citations.mark("a\uE0009\uE001")), "a[1]\uFFFD9\uFFFD");
});

test("a number never lands inside a URL or a Markdown link", () => {
  const text = "See [Lake Biwa](https://example.com/biwa) or www.example.org/x now";
  assert.equal(outsideLinks(text, text.indexOf("Biwa]") + 2), text.indexOf(" or"));
  assert.equal(outsideLinks(text, text.indexOf("/biwa")), text.indexOf(" or"));
  assert.equal(outsideLinks(text, text.indexOf("/x")), text.indexOf(" now"));
  assert.equal(outsideLinks(text, text.indexOf("Lake") + 2), text.indexOf("Lake") + 2);
  assert.equal(outsideLinks(text, text.length), text.length);
});
