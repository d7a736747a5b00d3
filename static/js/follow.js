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
    const atEnd = scrollHeight - clientHeight - scrollTop <= SLACK;
    // Up and away from the end is the user leaving it; down to the end, following again. Moving up
    // within the slack changes nothing: the first frame of a smooth scroll the wheel started
    // (already not followed), or the page clamping as the answer's last lines change.
    if (!atEnd && scrollTop < this.lastTop) this.following = false;
    else if (atEnd && scrollTop >= this.lastTop) this.following = true;
    this.lastTop = scrollTop;
  }

  wheeled(event) {
    if (event.deltaY < 0 && this.root.scrollTop > 0) this.following = false;
  }
}
