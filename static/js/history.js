// The user's conversations, kept by the server: a list beside the transcript on a wide screen, a
// drawer on a phone (opened from the header, closed by Escape, by choosing, or by its backdrop;
// the page behind it is inert meanwhile). Each entry opens its conversation (a link to its
// address), and can be renamed or deleted (deleting asks first). Titles are the users' own
// text: set as text, never parsed.
import { addressOf } from "./address.js";
import { deleteConversation, errorOf, listConversations, renameConversation } from "./api.js";
import { localize, localizeLabel, t } from "./i18n.js";

export class History {
  /**
   * @param {object} options
   * @param {Document} options.document
   * @param {string} options.apiBase
   * @param {(region: "announcer" | "alert", text: string) => void} options.say announce, politely or as an alert
   * @param {(id: string) => void} options.onDeleted a conversation is gone (the page leaves it if it is open)
   * @param {MediaQueryList} options.drawer when the list is a drawer
   */
  constructor({ document, apiBase, say, onDeleted, drawer }) {
    const $ = (selector) => document.querySelector(selector);
    Object.assign(this, { document, apiBase, say, onDeleted, drawer });
    this.panel = $("#history");
    this.list = $("#history-list");
    this.status = $("#history-status");
    this.more = $("#history-more");
    this.toggle = $("#history-toggle");
    this.backdrop = $("#history-backdrop");
    this.renameDialog = $("#rename-dialog");
    this.deleteDialog = $("#delete-dialog");
    this.next = null; // the next page's cursor
    this.currentId = null;
    this.more.addEventListener("click", () => this.load(this.next));
    this.toggle.addEventListener("click", () => (this.isOpen ? this.close() : this.open()));
    $("#history-close").addEventListener("click", () => this.close());
    this.backdrop.addEventListener("click", () => this.close());
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.isOpen) {
        event.preventDefault();
        this.close();
      }
    });
    drawer.addEventListener("change", () => this.close({ focus: false }));
  }

  /** Show the list (the page keeps conversations) and read its first page. */
  async start() {
    this.document.body.dataset.history = "on";
    this.panel.hidden = false;
    this.toggle.hidden = false;
    await this.load(null);
  }

  /** Read the first page again (after an answer: titles and order change), or the page after `after`. */
  async load(after = null) {
    let response;
    try {
      response = await listConversations(this.apiBase, after);
    } catch {
      localize(this.status, "historyFailed", { code: "network", message: "" });
      return;
    }
    if (!response.ok) {
      const { code, message } = await errorOf(response);
      localize(this.status, "historyFailed", { code, message });
      return;
    }
    const page = await response.json();
    if (after === null) this.list.replaceChildren();
    for (const summary of page.data) this.list.append(this.entry(summary));
    this.next = page.has_more ? page.next : null;
    this.more.hidden = this.next === null;
    localize(this.status, this.list.children.length === 0 ? "historyEmpty" : null);
  }

  /** Mark the conversation shown (null: a new one). */
  show(id) {
    this.currentId = id;
    for (const link of this.list.querySelectorAll(".history-link")) {
      if (link.dataset.id === id) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  entry({ id, title }) {
    const item = this.document.createElement("li");
    item.className = "history-entry";
    item.dataset.id = id;
    const link = this.document.createElement("a");
    link.className = "history-link";
    link.href = addressOf(id);
    link.dataset.id = id;
    if (id === this.currentId) link.setAttribute("aria-current", "page");
    link.addEventListener("click", () => this.close({ focus: false }));
    const actions = this.document.createElement("div");
    actions.className = "history-actions";
    const rename = this.button("rename", () => this.rename(item));
    const remove = this.button("delete", () => this.remove(item));
    actions.append(rename, remove);
    item.append(link, actions);
    this.retitle(item, title);
    return item;
  }

  button(key, onClick) {
    const button = this.document.createElement("button");
    button.type = "button";
    button.className = key;
    localize(button, key);
    button.addEventListener("click", onClick);
    return button;
  }

  /** Show an entry's title (null: not named yet), in its link and its buttons' names. */
  retitle(item, title) {
    const link = item.querySelector(".history-link");
    item.dataset.title = title ?? "";
    if (title) {
      delete link.dataset.i18n;
      link.textContent = title;
    } else {
      localize(link, "untitled");
    }
    const named = { title: title || t("untitled") };
    localizeLabel(item.querySelector(".rename"), "renameOf", named);
    localizeLabel(item.querySelector(".delete"), "deleteOf", named);
  }

  async rename(item) {
    const input = this.renameDialog.querySelector("input");
    input.value = item.dataset.title;
    if ((await this.ask(this.renameDialog, input)) !== "save") return;
    const title = input.value.trim();
    if (!title || title === item.dataset.title) return;
    const response = await renameConversation(this.apiBase, item.dataset.id, title);
    if (!response.ok) {
      const { code, message } = await errorOf(response);
      this.say("alert", t("failed", { code, message }));
      return;
    }
    this.retitle(item, (await response.json()).title);
    this.say("announcer", t("renamed", { title }));
    item.querySelector(".rename").focus();
  }

  async remove(item) {
    const title = item.dataset.title || t("untitled");
    localize(this.deleteDialog.querySelector("#delete-help"), "deleteAsk", { title });
    if ((await this.ask(this.deleteDialog, this.deleteDialog.querySelector(".cancel"))) !== "delete") return;
    const response = await deleteConversation(this.apiBase, item.dataset.id);
    if (!response.ok && response.status !== 404) {
      const { code, message } = await errorOf(response);
      this.say("alert", t("failed", { code, message }));
      return;
    }
    const neighbour = item.nextElementSibling ?? item.previousElementSibling;
    item.remove();
    localize(this.status, this.list.children.length === 0 ? "historyEmpty" : null);
    this.say("announcer", t("deleted", { title }));
    (neighbour?.querySelector(".history-link") ?? this.document.querySelector("#history-title")).focus();
    this.onDeleted(item.dataset.id);
  }

  /** Show a dialog, `focus` in it; resolves to how it was closed ("" for Escape). */
  ask(dialog, focus) {
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true });
      dialog.returnValue = "";
      dialog.showModal();
      focus.focus();
    });
  }

  get isOpen() {
    return this.document.body.dataset.drawer === "open";
  }

  /** The drawer (on a phone): open over an inert page, the focus in it. */
  open() {
    if (!this.drawer.matches) return;
    this.document.body.dataset.drawer = "open";
    this.toggle.setAttribute("aria-expanded", "true");
    this.backdrop.hidden = false;
    for (const element of this.behind()) element.inert = true;
    (this.list.querySelector("[aria-current=page]") ?? this.list.querySelector("a") ?? this.panel.querySelector("button")).focus();
  }

  close({ focus = true } = {}) {
    if (!this.isOpen) return;
    delete this.document.body.dataset.drawer;
    this.toggle.setAttribute("aria-expanded", "false");
    this.backdrop.hidden = true;
    for (const element of this.behind()) element.inert = false;
    if (focus) this.toggle.focus();
  }

  /** What the drawer covers. */
  behind() {
    return [...this.document.body.children].filter(
      (element) => element !== this.panel && element.tagName !== "DIALOG" && element.tagName !== "TEMPLATE",
    );
  }
}
