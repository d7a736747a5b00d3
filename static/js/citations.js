// Url citations as numbered links next to the text they cite. Only http(s) URLs become
// links (target _blank, rel "noopener noreferrer"); any other URL stays a plain number.
// The links are built with DOM calls after the Markdown is rendered and sanitized: no
// citation field is ever parsed as HTML or Markdown.
import { localizeLabel } from "./i18n.js";

// A marker "\uE000<number>\uE001" goes into the Markdown source where a citation ends and
// becomes the link once rendered. These private-use characters in the model's own text
// are replaced first (by U+FFFD, also one UTF-16 unit, so offsets stay right).
const OPEN = "\uE000";
const MARKER = /\uE000(\d+)\uE001/g;
const SENTINELS = /[\uE000\uE001]/g;
const LINK_SYNTAX = /\]\(|:\/\/|^www\./i;

/** The URL to link to when `url` is an absolute http(s) URL, else null. */
export function safeHref(url) {
  if (typeof url !== "string") return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

/** The UTF-16 offset of the `index`-th code point of `text` (the API counts code points), at most its length. */
export function utf16Offset(text, index) {
  let offset = 0;
  let points = 0;
  while (points < index && offset < text.length) {
    offset += text.codePointAt(offset) > 0xffff ? 2 : 1;
    points += 1;
  }
  return offset;
}

/**
 * `offset`, or the end of the stretch of text without spaces around it when that stretch
 * holds a URL or a Markdown link: a marker inside one would break the link.
 */
export function outsideLinks(text, offset) {
  const before = /\S*$/.exec(text.slice(0, offset))[0];
  const after = /^\S*/.exec(text.slice(offset))[0];
  return LINK_SYNTAX.test(before + after) ? offset + after.length : offset;
}

export class Citations {
  constructor() {
    this.sources = []; // {url, href, title}; a source's number is its place here + 1
    this.places = []; // {end, number}: a marker after code point `end` of the text
  }

  /** Takes one annotation; url citations get a number (the same URL keeps its number). */
  add(annotation) {
    if (annotation?.type !== "url_citation" || typeof annotation.url !== "string") return;
    let number = this.sources.findIndex((source) => source.url === annotation.url) + 1;
    if (!number) {
      const title = typeof annotation.title === "string" ? annotation.title : "";
      number = this.sources.push({ url: annotation.url, href: safeHref(annotation.url), title });
    }
    const end = Number.isSafeInteger(annotation.end_index) && annotation.end_index >= 0 ? annotation.end_index : Infinity;
    if (!this.places.some((place) => place.end === end && place.number === number)) this.places.push({ end, number });
  }

  /** `text` with a marker where each citation ends (at the end while that part has not arrived yet). */
  mark(text) {
    let marked = text.replace(SENTINELS, "\uFFFD");
    const places = this.places
      .map((place) => ({ offset: outsideLinks(marked, utf16Offset(marked, place.end)), number: place.number }))
      .sort((a, b) => b.offset - a.offset || b.number - a.number);
    for (const { offset, number } of places) {
      marked = `${marked.slice(0, offset)}${OPEN}${number}\uE001${marked.slice(offset)}`;
    }
    return marked;
  }

  /** Turns the markers in `root`'s text into citation elements. */
  link(root) {
    const document = root.ownerDocument;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const marked = [];
    while (walker.nextNode()) if (walker.currentNode.data.includes(OPEN)) marked.push(walker.currentNode);
    for (const node of marked) {
      const anchor = node.parentElement?.closest("a");
      const pieces = [];
      let last = 0;
      for (const match of node.data.matchAll(MARKER)) {
        pieces.push(node.data.slice(last, match.index), this.element(document, Number(match[1])));
        last = match.index + match[0].length;
      }
      pieces.push(node.data.slice(last));
      if (anchor) {
        // Never a link inside the model's own link: the numbers go right after it.
        node.data = pieces.filter((piece) => typeof piece === "string").join("");
        anchor.after(...pieces.filter((piece) => typeof piece !== "string"));
      } else {
        node.replaceWith(...pieces.filter((piece) => piece !== ""));
      }
    }
  }

  element(document, number) {
    const source = this.sources[number - 1];
    const label = `[${number}]`;
    const wrapper = document.createElement("sup");
    wrapper.className = "citation";
    if (!source?.href) {
      wrapper.textContent = label;
      wrapper.title = source ? source.title || source.url : "";
      return wrapper;
    }
    const link = document.createElement("a");
    link.href = source.href;
    link.target = "_blank"; // the conversation lives in this tab: sources open beside it
    link.rel = "noopener noreferrer";
    link.textContent = label;
    link.title = source.title || new URL(source.href).hostname;
    localizeLabel(link, "source", { number, title: link.title });
    wrapper.append(link);
    return wrapper;
  }
}
