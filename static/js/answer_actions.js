// The actions on a finished answer: Regenerate (the last answer only: asks again from the same
// context), Copy (the answer's Markdown), and Helpful / Not helpful with an optional comment,
// sent once (POST /api/feedback). Every result is announced.
import { localize, localizeLabel } from "./i18n.js";

export const MAX_COMMENT_CHARS = 1000;

export class AnswerActions {
  /**
   * `turn`: the answer's turn; `text()`: its Markdown; `regenerate()`, or null where it cannot be
   * asked again; `sendFeedback(rating, comment)`: resolves to {ok, code}, or null where the server
   * keeps no feedback; `say(key, values, {alert})`: announce a line.
   */
  constructor(turn, { text, regenerate, sendFeedback, say }) {
    this.say = say;
    this.sendFeedback = sendFeedback;
    this.bar = document.createElement("div");
    this.bar.className = "answer-actions";
    this.bar.setAttribute("role", "group");
    localizeLabel(this.bar, "answerActions");
    if (regenerate) this.regenerateButton = this.button("regenerate", regenerate);
    this.button("copy", () => this.copy(text()));
    if (sendFeedback) {
      this.ratings = [
        ["helpful", "up"],
        ["notHelpful", "down"],
      ].map(([key, rating]) => {
        const chosen = this.button(key, () => this.rate(chosen));
        chosen.dataset.rating = rating;
        chosen.setAttribute("aria-pressed", "false");
        return chosen;
      });
    }
    turn.article.append(this.bar);
  }

  button(key, onClick) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = key;
    localize(button, key);
    if (onClick) button.addEventListener("click", onClick);
    this.bar.append(button);
    return button;
  }

  /** This answer is no longer the last: it cannot be regenerated. */
  dropRegenerate() {
    this.regenerateButton?.remove();
    this.regenerateButton = null;
  }

  async copy(markdown) {
    try {
      await navigator.clipboard.writeText(markdown);
      this.say("copied", {});
    } catch {
      this.say("copyFailed", {}, { alert: true });
    }
  }

  /** A rating chosen: ask for an optional comment, then send both once. */
  rate(chosen) {
    for (const rating of this.ratings) rating.setAttribute("aria-pressed", String(rating === chosen));
    this.form?.remove();
    this.form = this.commentForm(chosen);
    this.bar.after(this.form);
    this.form.querySelector("textarea").focus();
  }

  commentForm(chosen) {
    const form = document.createElement("form");
    form.className = "feedback";
    const id = `comment-${Math.random().toString(36).slice(2)}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    localize(label, "feedbackComment", { max: MAX_COMMENT_CHARS });
    const comment = document.createElement("textarea");
    comment.id = id;
    comment.rows = 2;
    comment.maxLength = MAX_COMMENT_CHARS;
    const buttons = document.createElement("div");
    buttons.className = "buttons";
    const submit = document.createElement("button");
    submit.type = "submit";
    localize(submit, "feedbackSend");
    const cancel = document.createElement("button");
    cancel.type = "button";
    localize(cancel, "feedbackCancel");
    cancel.addEventListener("click", () => {
      for (const rating of this.ratings) rating.setAttribute("aria-pressed", "false");
      form.remove();
      chosen.focus();
    });
    buttons.append(submit, cancel);
    form.append(label, comment, buttons);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit(form, chosen.dataset.rating, comment.value.trim());
    });
    return form;
  }

  async submit(form, rating, comment) {
    const controls = [...form.elements, ...this.ratings];
    for (const control of controls) control.disabled = true;
    const { ok, code } = await this.sendFeedback(rating, comment);
    if (!ok) {
      for (const control of controls) control.disabled = false;
      this.say("feedbackFailed", { code }, { alert: true });
      return;
    }
    const thanks = document.createElement("p");
    thanks.className = "feedback-sent";
    localize(thanks, "feedbackThanks");
    form.replaceWith(thanks);
    this.say("feedbackThanks", {});
  }
}
