// While an answer is written, keep the page scrolled to its end so the new text is in view;
// stop as soon as the user scrolls up to read, and follow again once they are back at the end.
const SLACK = 8; // pixels from the end that still count as the end

export class FollowScroll {
  /** `content`: the element that grows (the transcript). */
  constructor(content) {
    this.active = false; // an answer is being written
    this.following = true;
    this.touched = false; // the user has scrolled, or used a key or pointer, since the answer started
    this.lastTop = this.root.scrollTop;
    new ResizeObserver(() => {
      if (this.active && this.following) this.toEnd();
    }).observe(content);
    addEventListener("scroll", () => this.scrolled(), { passive: true });
    // A scroll that started before the answer (a keyboard's smooth scroll goes on after the page
    // moved to the end) is not the user leaving it: once it stops, the view goes back to the end.
    addEventListener("scrollend", () => {
      if (this.active && this.following) this.toEnd();
    });
    for (const type of ["keydown", "pointerdown", "touchstart"]) {
      addEventListener(type, () => (this.touched = true), { passive: true, capture: true });
    }
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
    this.touched = false;
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
    // Up and away from the end, after the user touched a key, a pointer or the screen, is the user
    // leaving it; down to the end, following again. Moving up within the slack changes nothing
    // (the first frame of a smooth scroll, or the page clamping as the answer's last lines change).
    if (!atEnd && scrollTop < this.lastTop && this.touched) this.following = false;
    else if (atEnd && scrollTop >= this.lastTop) this.following = true;
    this.lastTop = scrollTop;
  }

  wheeled(event) {
    this.touched = true;
    if (event.deltaY < 0 && this.root.scrollTop > 0) this.following = false;
  }
}
