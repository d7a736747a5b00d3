// Model output as Markdown, rendered safely: raw HTML is shown as text, and DOMPurify
// removes anything that could run script or load remote content. Rendering is batched
// to animation frames, so a long answer costs one render per frame, not one per delta.
import DOMPurify from "../vendor/dompurify/purify.es.js";
import { Marked } from "../vendor/marked/marked.esm.js";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escapeHtml = (text) => text.replace(/[&<>"']/g, (char) => ESCAPES[char]);

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    html: ({ text }) => escapeHtml(text),
    image: ({ text }) => escapeHtml(text),
  },
});

const PURIFY = {
  FORBID_TAGS: ["img", "style", "iframe", "form", "input", "button", "textarea", "select", "video", "audio",
    "source", "picture", "svg", "math", "object", "embed", "link", "meta", "base"],
  FORBID_ATTR: ["style", "src", "srcset", "action", "formaction"],
  ALLOW_DATA_ATTR: false,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

export function toSafeHtml(markdown) {
  return DOMPurify.sanitize(marked.parse(markdown), PURIFY);
}

/**
 * Renders a growing Markdown text into `element`, at most once per animation frame;
 * with `citations` (citations.js), their numbered links go next to the cited text.
 */
export class StreamingMarkdown {
  constructor(element, citations = null) {
    this.element = element;
    this.citations = citations;
    this.text = "";
    this.frame = 0;
  }

  append(delta) {
    this.text += delta;
    this.refresh();
  }

  /** Render at the next animation frame. */
  refresh() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  render() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    if (!this.citations) {
      this.element.innerHTML = toSafeHtml(this.text);
      return;
    }
    this.element.innerHTML = toSafeHtml(this.citations.mark(this.text));
    this.citations.link(this.element);
  }
}
