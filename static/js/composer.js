// The composer's attachments: the attach button (a file picker), paste of an image into the text
// box, and drop onto the composer. Each attachment shows as a thumbnail (a PDF as an icon with its
// name) with a remove button; adding, removing and every refusal are announced.
import { ACCEPT, attachmentLimits, countProblem, prepare } from "./attachments.js";
import { localizeLabel } from "./i18n.js";

export class Composer {
  /**
   * `elements`: {form, question, attach, input, list}; `say(key, values, {alert})`: announce a line
   * (an alert for a refusal).
   */
  constructor({ form, question, attach, input, list }, say) {
    Object.assign(this, { form, question, attach, input, list, say });
    this.attachments = []; // prepared attachments, in order
    this.pending = Promise.resolve(); // the files being prepared
    this.limits = attachmentLimits(null);
    input.accept = ACCEPT;
    attach.addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      this.add([...input.files]);
      input.value = ""; // the same file can be picked again
    });
    question.addEventListener("paste", (event) => {
      const files = [...(event.clipboardData?.files ?? [])];
      if (files.length === 0) return; // text is pasted as usual
      event.preventDefault();
      this.add(files);
    });
    form.addEventListener("dragover", (event) => {
      if (!event.dataTransfer?.types.includes("Files") || !this.enabled) return;
      event.preventDefault();
      form.classList.add("dropping");
    });
    form.addEventListener("dragleave", () => form.classList.remove("dropping"));
    form.addEventListener("drop", (event) => {
      form.classList.remove("dropping");
      if (!event.dataTransfer?.files.length || !this.enabled) return;
      event.preventDefault();
      this.add([...event.dataTransfer.files]);
    });
  }

  get enabled() {
    return this.limits.max_attachments > 0;
  }

  /** The server's limits (health's `limits`): none taken hides the attach button. */
  setLimits(given) {
    this.limits = attachmentLimits(given);
    this.attach.hidden = !this.enabled;
  }

  /** Prepare and show `files`, announcing each (or why it is refused); settles when all are ready. */
  add(files) {
    this.pending = this.pending.then(() => this.addNow(files));
    return this.pending;
  }

  async addNow(files) {
    for (const file of files) {
      const problem = countProblem(this.attachments.length, 1, this.limits);
      if (problem) {
        this.say(problem.key, problem.values, { alert: true });
        return;
      }
      try {
        const attachment = await prepare(file, this.limits);
        this.attachments.push(attachment);
        this.list.append(this.item(attachment));
        this.say("attached", { name: attachment.name });
      } catch (problem) {
        if (!problem.key) throw problem;
        this.say(problem.key, problem.values, { alert: true });
      }
    }
    this.update();
  }

  item(attachment) {
    const item = document.createElement("li");
    item.className = "attachment";
    item.append(thumbnail(attachment));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = "×";
    localizeLabel(remove, "removeAttachment", { name: attachment.name });
    remove.addEventListener("click", () => this.remove(attachment, item));
    item.append(remove);
    return item;
  }

  remove(attachment, item) {
    const next = item.nextElementSibling ?? item.previousElementSibling;
    this.attachments = this.attachments.filter((kept) => kept !== attachment);
    item.remove();
    this.say("removed", { name: attachment.name });
    this.update();
    (next?.querySelector(".remove") ?? this.attach).focus();
  }

  /** Take the attachments for a question being sent, and clear the composer. */
  take() {
    const taken = this.attachments;
    this.attachments = [];
    this.list.replaceChildren();
    this.update();
    return taken;
  }

  clear() {
    this.take();
  }

  update() {
    this.list.hidden = this.attachments.length === 0;
    this.question.required = this.attachments.length === 0; // a photo alone may be asked about
  }
}

/** A thumbnail of an attachment: the image itself, or a PDF icon with the file's name. */
export function thumbnail(attachment) {
  if (attachment.kind === "image") {
    const image = document.createElement("img");
    image.src = attachment.dataUrl;
    image.alt = attachment.name;
    image.className = "thumbnail";
    return image;
  }
  const pdf = document.createElement("span");
  pdf.className = "thumbnail pdf";
  const icon = document.createElement("span");
  icon.className = "pdf-icon";
  icon.setAttribute("aria-hidden", "true");
  icon.textContent = "PDF";
  const name = document.createElement("span");
  name.className = "pdf-name";
  name.textContent = attachment.name;
  pdf.append(icon, name);
  return pdf;
}

/** The thumbnails of a sent question, for its turn in the transcript (and the conversation's history). */
export function thumbnails(attachments) {
  const list = document.createElement("ul");
  list.className = "thumbnails";
  localizeLabel(list, "attachments");
  for (const attachment of attachments) {
    const item = document.createElement("li");
    item.append(thumbnail(attachment));
    list.append(item);
  }
  return list;
}
