// While an answer is written, keep the page scrolled to its end so the new text is in view;
// stop as soon as the user scrolls up to read, and follow again once they are back at the end.
const SLACK = 8; // pixels from the end that still count as the end

export class FollowScroll {
  /** `content`: the element that grows (the transcript). */
  constructor(content) {
    this.active = false; // an answer is being written
    this.following = true;
    this.lastTop = this.root.scrollTop;
    new ResizeObserver(() => {
      if (this.active && this.following) this.toEnd();
    }).observe(content);
    addEventListener("scroll", () => this.scrolled(), { passive: true });
    // A wheel turned up says what the user wants before the page has moved.
    addEventListener("wheel", (event) => this.wheeled(event), { passive: true });
  }

  get root() {
    return document.scrollingElement;
  }

  /** A new question: show it, and follow its answer. */
  start() {
    this.active = true;
    this.following = true;
    this.toEnd();
  }

  /** The answer has ended: its last lines (status, metrics) are in place, not yet observed. */
  stop() {
    if (this.following) this.toEnd();
    this.active = false;
  }

  toEnd() {
    this.root.scrollTop = this.root.scrollHeight;
  }

  scrolled() {
    const { scrollTop, scrollHeight, clientHeight } = this.root;
    if (scrollHeight - clientHeight - scrollTop <= SLACK) this.following = true;
    else if (scrollTop < this.lastTop) this.following = false;
    this.lastTop = scrollTop;
  }

  wheeled(event) {
    if (event.deltaY < 0 && this.root.scrollTop > 0) this.following = false;
  }
}
