// The chat page: wires the form, the stream reader and the transcript together.
import { showAccount } from "./account.js";
import { AnswerView } from "./answer.js";
import { cancelChat, errorOf, functionKey, health, loadConfig, postChat, resumeChat, saveFunctionKey } from "./api.js";
import { signIn, signsIn, startSignIn } from "./auth.js";
import { Conversation, DEFAULT_LIMITS } from "./conversation.js";
import { FollowScroll } from "./follow.js";
import { chooseLanguage, localize, setLanguage, t, translatePage } from "./i18n.js";
import { isSendKey, watchComposition } from "./keyboard.js";
import { BACKOFF_SECONDS, clearPending, Progress, savePending, takePending, wait } from "./resume.js";
import { readEvents, StreamDataError } from "./stream.js";
import { createTurn, offerRetry, showMetrics } from "./turn.js";

const $ = (selector) => document.querySelector(selector);
const form = $("#ask");
const question = $("#question");
const send = $("#send");
const stop = $("#stop");
const transcript = $("#transcript");
const template = $("#turn");
const announcer = $("#announcer");
const alertRegion = $("#alert");
const banner = $("#demo-banner");
const languageSelect = $("#language");
const keyDialog = $("#key-dialog");
const narrow = matchMedia("(max-width: 32rem)"); // app.css's phone layout

const state = {
  apiBase: null, // from config.json; nothing is sent before it is read
  chain: true, // continue with previous_response_id; false: send the history (see conversation.js)
  limits: DEFAULT_LIMITS,
  resumable: false, // the server can resume a cut stream and cancel a response (RESUMABLE_STREAMS)
  controller: null,
  progress: null, // how far the answer being read got
  leaving: false, // the page is being unloaded: an unfinished answer stays for the reload to continue
  conversation: new Conversation(),
};
const follow = new FollowScroll(transcript);

function applyLanguage(language) {
  languageSelect.value = setLanguage(language);
  translatePage(document);
}

/** Speak `text` once, through a live region outside the transcript. */
function say(region, text) {
  const line = document.createElement("p");
  line.textContent = text;
  region.replaceChildren(line);
}

/** While an answer streams: the turn is busy and Stop has the focus (moved before Send hides, so it never falls to <body>). */
function setBusy(answer, busy, typing = false) {
  document.body.dataset.busy = String(busy);
  if (busy) {
    answer.article.setAttribute("aria-busy", "true");
    stop.hidden = false;
    stop.focus({ preventScroll: true });
    send.hidden = true;
    return;
  }
  answer.article.removeAttribute("aria-busy");
  send.hidden = false;
  // Back to the text box only where that opens no on-screen keyboard unasked; focus the user moved stays.
  if ([stop, document.body, null].includes(document.activeElement)) {
    (typing || !narrow.matches ? question : send).focus({ preventScroll: true });
  }
  stop.hidden = true;
}

function showProblem(turn, key, values, retryQuestion, waitSeconds = null) {
  localize(turn.status, key, values);
  turn.status.classList.add("error");
  say(alertRegion, t(key, values));
  offerRetry(turn, waitSeconds, () => {
    if (state.controller) return;
    turn.article.previousElementSibling?.remove();
    turn.article.remove();
    ask(retryQuestion, false);
  });
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
    keyDialog.returnValue = ""; // a close request (Escape, a back gesture) keeps it: never the last "save"
    keyDialog.showModal();
  });
}

/** POST the question, continuing the conversation as the server allows; resolves to {response, omitted}. */
async function post(text, signal) {
  let keep = Infinity;
  for (;;) {
    const { body, omitted, sent } = state.conversation.request(text, { chain: state.chain, limits: state.limits, keep });
    const response = await postChat(state.apiBase, body, signal);
    const code = response.status === 400 ? (await errorOf(response.clone())).code : null;
    if (code === "previous_response_not_found" && body.previous_response_id) {
      state.chain = false; // the server keeps no responses, or lost this one: send the history from now on
    } else if (code === "context_length_exceeded" && sent > 0) {
      keep = Math.floor(sent / 2); // too long for the model: only the later half of the exchanges
    } else {
      return { response, omitted };
    }
  }
}

/** Ask `text`; `typing`: it was sent from the text box (so focus goes back there). */
async function ask(text, typing) {
  if (state.controller || state.apiBase === null) return;
  await showAnswer(new Progress(text), typing, (signal) => post(text, signal));
}

/** Continue the answer a reload of the page cut off: its whole stream again, from the start. */
async function continuePending({ question: text, responseId }) {
  const progress = new Progress(text);
  progress.responseId = responseId;
  const open = async (signal) => ({ response: await resumeChat(state.apiBase, responseId, null, signal), omitted: 0 });
  await showAnswer(progress, false, open);
}

/** Show the answer to `progress.question` that `open(signal)` starts ({response, omitted}). */
async function showAnswer(progress, typing, open) {
  const text = progress.question;
  alertRegion.replaceChildren();
  const userTurn = createTurn(template, "user");
  userTurn.body.textContent = text;
  const answer = createTurn(template, "assistant");
  localize(answer.status, "thinking");
  transcript.append(userTurn.article, answer.article);
  const controller = (state.controller = new AbortController());
  state.progress = progress;
  setBusy(answer, true);
  follow.start();
  const view = new AnswerView(answer);
  const started = performance.now();
  let firstAt = null;
  let askAgain = false;
  const onEvent = (event) => {
    if (event.type === "response.created" && progress.stopWhenCreated) stopAnswer();
    else if (event.type === "response.created" && state.resumable) savePending(sessionStorage, progress);
    if (view.show(event)) firstAt = performance.now();
  };
  try {
    const { response, omitted } = await open(controller.signal);
    if (omitted > 0) localize(answer.note, "trimmed", { count: omitted });
    if (response.status === 401 && !controller.signal.aborted && signsIn()) {
      await signIn(); // leaves for the sign-in page, which brings the user back signed in
      return;
    }
    if (response.status === 401 && !controller.signal.aborted) {
      if (functionKey()) saveFunctionKey(null); // the saved key was refused
      askAgain = await askForKey();
      if (!askAgain) {
        const { code, message } = await errorOf(response);
        showProblem(answer, "failed", { code, message }, text);
      }
      return;
    }
    if (!response.ok) {
      const { code, message, retryAfter } = await errorOf(response);
      showProblem(answer, "failed", { code, message }, text, retryAfter);
      return;
    }
    const { terminal, refused } = await readResuming(response.body, onEvent, progress, answer, controller.signal);
    view.render();
    if (refused) {
      showProblem(answer, "failed", refused, text);
    } else if (terminal === null) {
      // Given up: a background response would go on generating for nobody.
      if (state.resumable && progress.responseId) cancelChat(state.apiBase, progress.responseId);
      showProblem(answer, firstAt === null && progress.responseId === null ? "network" : "cut", {}, text);
    } else if (terminal.type === "error") {
      const { code, message } = terminal.data;
      showProblem(answer, "failed", { code, message }, text);
    } else {
      const { status, incomplete_reason: reason, response_id: responseId, usage } = terminal.data;
      localize(answer.status, { incomplete: "incomplete", cancelled: "stopped" }[status] ?? null, { reason });
      state.conversation.remember(text, view.text, responseId);
      showMetrics(answer, { started, firstAt, ended: performance.now(), usage });
    }
  } catch (error) {
    view.render();
    if (controller.signal.aborted) localize(answer.status, "stopped");
    else if (error instanceof StreamDataError) showProblem(answer, "badData", {}, text);
    else showProblem(answer, firstAt === null ? "network" : "cut", {}, text);
  } finally {
    state.controller = null;
    state.progress = null;
    if (!state.leaving) clearPending(sessionStorage);
    follow.stop();
    setBusy(answer, false, typing);
    if (askAgain) {
      userTurn.article.remove();
      answer.article.remove();
      ask(text, typing);
    } else if (answer.article.isConnected && !answer.status.classList.contains("error")) {
      say(announcer, answerText(answer));
    }
  }
}

/**
 * Read the answer's events to its terminal event; after a cut, when the server can resume,
 * reconnect with backoff and read on after the last event seen, so no text comes twice.
 * Resolves to {terminal} (null: it stayed cut) or {refused} (the server would not resume it).
 */
async function readResuming(body, onEvent, progress, turn, signal) {
  let moved = false;
  const see = (event) => {
    if (progress.see(event)) moved = true;
    onEvent(event);
  };
  let { terminal } = await readOrCut(body, see, signal);
  const canResume = () => terminal === null && state.resumable && progress.responseId;
  for (let attempt = 0; canResume() && attempt < BACKOFF_SECONDS.length; attempt++) {
    localize(turn.status, "reconnecting");
    await wait(BACKOFF_SECONDS[attempt], signal);
    let response;
    try {
      response = await resumeChat(state.apiBase, progress.responseId, progress.lastId, signal);
    } catch (error) {
      if (signal.aborted) throw error;
      continue; // still offline: wait longer
    }
    if (!response.ok) {
      const { code, message } = await errorOf(response);
      return { terminal: null, refused: { code, message } };
    }
    localize(turn.status, null);
    moved = false;
    ({ terminal } = await readOrCut(response.body, see, signal));
    if (moved) attempt = -1; // it got somewhere: a later cut starts the backoff over
  }
  return { terminal };
}

/** readEvents, with a broken connection read as a cut (a stream without its terminal event). */
async function readOrCut(body, onEvent, signal) {
  try {
    return await readEvents(body, onEvent);
  } catch (error) {
    if (signal.aborted || error instanceof StreamDataError) throw error;
    return { terminal: null };
  }
}

/** What a screen reader hears of a finished answer: all of it, once. */
function answerText(turn) {
  const parts = [turn.refusal.hidden ? "" : turn.refusal.innerText, turn.body.innerText, turn.status.textContent];
  return parts.filter((part) => part.trim()).join("\n");
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
  if (!text || state.controller || state.apiBase === null) return;
  question.value = "";
  ask(text, event.submitter !== send);
});

/**
 * Stop the answer being read. The server may never hear of the aborted fetch (a host that does
 * not pass disconnects on, or background mode, where the response goes on by design): ask it to
 * stop generating too. Before the response has an id, wait for it (background mode) or just abort.
 */
function stopAnswer() {
  const progress = state.progress;
  if (progress === null) return;
  if (progress.responseId) {
    cancelChat(state.apiBase, progress.responseId);
    state.controller?.abort();
  } else if (state.resumable) {
    progress.stopWhenCreated = true; // see showAnswer's onEvent
  } else {
    state.controller?.abort();
  }
}

stop.addEventListener("click", stopAnswer);

addEventListener("pagehide", () => {
  state.leaving = true;
});
addEventListener("pageshow", () => {
  state.leaving = false; // back from the back/forward cache: still this page's answer
});

$("#new-chat").addEventListener("click", () => {
  stopAnswer();
  state.conversation.clear();
  transcript.replaceChildren();
  alertRegion.replaceChildren();
  question.focus();
});

languageSelect.addEventListener("change", () => {
  localStorage.setItem("language", languageSelect.value);
  applyLanguage(languageSelect.value);
});

/** The server's limits, where it gave them as positive integers. */
function limitsFrom(given) {
  const limits = { ...DEFAULT_LIMITS };
  for (const name of Object.keys(limits)) {
    if (Number.isSafeInteger(given?.[name]) && given[name] > 0) limits[name] = given[name];
  }
  return limits;
}

applyLanguage(chooseLanguage(localStorage.getItem("language"), navigator.languages));
const config = await loadConfig();
if (await startSignIn(config.auth)) showAccount($("#account"));
state.apiBase = config.apiBase;
send.disabled = false;
const status = await health(state.apiBase);
state.resumable = status?.resumable === true;
state.chain = status?.stores_responses !== false;
state.limits = limitsFrom(status?.limits);
question.maxLength = state.limits.max_message_chars;
banner.hidden = status?.upstream !== "demo";
document.body.dataset.ready = "true";
const pending = takePending(sessionStorage);
if (pending && state.resumable) continuePending(pending);
