// The chat page: wires the form, the stream reader and the transcript together.
import { AnswerView } from "./answer.js";
import { errorOf, functionKey, health, loadApiBase, postChat, saveFunctionKey } from "./api.js";
import { Conversation } from "./conversation.js";
import { chooseLanguage, setLanguage, t, translatePage } from "./i18n.js";
import { isSendKey, watchComposition } from "./keyboard.js";
import { readEvents } from "./stream.js";

const $ = (selector) => document.querySelector(selector);
const form = $("#ask");
const question = $("#question");
const send = $("#send");
const stop = $("#stop");
const transcript = $("#transcript");
const banner = $("#demo-banner");
const languageSelect = $("#language");
const keyDialog = $("#key-dialog");

const state = { apiBase: "/api", controller: null, conversation: new Conversation() };

function applyLanguage(language) {
  languageSelect.value = setLanguage(language);
  translatePage(document);
}

function addTurn(role) {
  const article = $("#turn").content.firstElementChild.cloneNode(true);
  article.classList.add(role);
  article.querySelector(".who").textContent = t(role === "user" ? "you" : "assistant");
  transcript.append(article);
  const parts = {
    article,
    body: article.querySelector(".body"),
    status: article.querySelector(".status"),
    metrics: article.querySelector(".metrics"),
    thinking: article.querySelector(".thinking"),
    thinkingLabel: article.querySelector(".thinking summary"),
    thinkingBody: article.querySelector(".thinking-body"),
    refusal: article.querySelector(".refusal"),
    refusalText: article.querySelector(".refusal-text"),
  };
  parts.refusal.querySelector(".refusal-label").textContent = t("refusal");
  article.scrollIntoView({ block: "end" });
  return parts;
}

function setBusy(busy) {
  send.disabled = busy;
  stop.hidden = !busy;
  send.hidden = busy;
  document.body.dataset.busy = String(busy);
  if (!busy) question.focus();
}

function showProblem(turn, text, retryQuestion, isError = true) {
  turn.status.textContent = text;
  turn.status.classList.toggle("error", isError);
  turn.status.setAttribute("role", "alert");
  if (retryQuestion === undefined) return;
  const retry = document.createElement("button");
  retry.type = "button";
  retry.className = "retry";
  retry.textContent = t("retry");
  retry.addEventListener("click", () => {
    turn.article.previousElementSibling?.remove();
    turn.article.remove();
    ask(retryQuestion);
  });
  turn.status.append(" ", retry);
}

function showMetrics(turn, started, firstAt, usage) {
  const parts = [];
  if (firstAt !== null) parts.push(t("ttft", { ms: Math.round(firstAt - started) }));
  const seconds = (performance.now() - (firstAt ?? started)) / 1000;
  if (usage) {
    if (seconds > 0) parts.push(t("rate", { rate: (usage.output_tokens / seconds).toFixed(1) }));
    parts.push(t("usage", { input: usage.input_tokens, output: usage.output_tokens, total: usage.total_tokens }));
  }
  turn.metrics.textContent = parts.join(" · ");
}

function askForKey() {
  return new Promise((resolve) => {
    keyDialog.addEventListener(
      "close",
      () => {
        const key = $("#key-input").value.trim();
        $("#key-input").value = "";
        const saved = keyDialog.returnValue === "save" && key !== "";
        if (saved) saveFunctionKey(key);
        resolve(saved);
      },
      { once: true },
    );
    keyDialog.showModal();
  });
}

async function ask(text) {
  if (state.controller) return;
  const userTurn = addTurn("user");
  userTurn.body.textContent = text;
  const answer = addTurn("assistant");
  answer.status.textContent = t("thinking");
  const controller = (state.controller = new AbortController());
  setBusy(true);
  const view = new AnswerView(answer);
  const started = performance.now();
  let firstAt = null;
  let retryWithKey = false;
  try {
    const response = await postChat(state.apiBase, state.conversation.inputFor(text), controller.signal);
    if (response.status === 401 && !controller.signal.aborted) {
      if (functionKey()) saveFunctionKey(null); // the saved key was refused
      retryWithKey = await askForKey();
      if (!retryWithKey) showProblem(answer, t("failed", await errorOf(response)), text);
      return;
    }
    if (!response.ok) {
      showProblem(answer, t("failed", await errorOf(response)), text);
      return;
    }
    const { terminal } = await readEvents(response.body, (event) => {
      if (view.show(event)) firstAt = performance.now();
    });
    view.render();
    if (terminal === null) {
      showProblem(answer, t("cut"), text);
    } else if (terminal.type === "error") {
      showProblem(answer, t("failed", terminal.data), text);
    } else {
      answer.status.textContent = "";
      if (terminal.data.status === "incomplete") {
        showProblem(answer, t("incomplete", { reason: terminal.data.incomplete_reason }), undefined, false);
      }
      state.conversation.remember(text, view.text);
      showMetrics(answer, started, firstAt, terminal.data.usage);
    }
  } catch {
    view.render();
    if (controller.signal.aborted) showProblem(answer, t("stopped"), undefined, false);
    else showProblem(answer, firstAt === null ? t("network") : t("cut"), text);
  } finally {
    state.controller = null;
    setBusy(false);
    if (retryWithKey) {
      userTurn.article.remove();
      answer.article.remove();
      ask(text);
    }
  }
}

const composition = watchComposition(question);
question.addEventListener("keydown", (event) => {
  if (isSendKey(event, composition)) {
    event.preventDefault();
    form.requestSubmit();
  }
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = question.value.trim();
  if (!text || state.controller) return;
  question.value = "";
  ask(text);
});

stop.addEventListener("click", () => state.controller?.abort());

$("#new-chat").addEventListener("click", () => {
  state.controller?.abort();
  state.conversation.clear();
  transcript.replaceChildren();
  question.focus();
});

languageSelect.addEventListener("change", () => {
  localStorage.setItem("language", languageSelect.value);
  applyLanguage(languageSelect.value);
});

applyLanguage(chooseLanguage(localStorage.getItem("language"), navigator.languages));
state.apiBase = await loadApiBase();
const status = await health(state.apiBase);
banner.hidden = status?.upstream !== "demo";
document.body.dataset.ready = "true";
