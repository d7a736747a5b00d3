// The chat page: wires the form, the stream reader and the transcript together.
import { showAccount } from "./account.js";
import { addressOf, conversationIn } from "./address.js";
import { AnswerView } from "./answer.js";
import { AnswerActions } from "./answer_actions.js";
import {
  cancelChat,
  createConversation,
  errorOf,
  functionKey,
  getConversation,
  health,
  loadConfig,
  postChat,
  postFeedback,
  resumeChat,
  saveFunctionKey,
} from "./api.js";
import { signIn, signsIn, startSignIn } from "./auth.js";
import { Composer, thumbnails } from "./composer.js";
import { Conversation, DEFAULT_LIMITS } from "./conversation.js";
import { FollowScroll } from "./follow.js";
import { History } from "./history.js";
import { chooseLanguage, localize, setLanguage, t, translatePage } from "./i18n.js";
import { isSendKey, watchComposition } from "./keyboard.js";
import { clearPending, Progress, savePending, takePending } from "./resume.js";
import { AnswerSession } from "./session.js";
import { createTurn, offerRetry, showMetrics, showTrace } from "./turn.js";

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
const drawer = matchMedia("(max-width: 48rem)"); // app.css: the conversations' list is a drawer

const state = {
  apiBase: null, // from config.json; nothing is sent before it is read
  chain: true, // continue with previous_response_id; false: send the history (see conversation.js)
  limits: DEFAULT_LIMITS,
  resumable: false, // the server can resume a cut stream and cancel a response (RESUMABLE_STREAMS)
  session: null, // the answer being read (an AnswerSession), if any
  calls: null, // the last answer's tool calls (a ToolCalls), whose approval prompts a new question expires
  leaving: false, // the page is being unloaded: an unfinished answer stays for the reload to continue
  conversation: new Conversation(),
  history: null, // the user's conversations (a History), when the server keeps them
  feedback: false, // the server keeps votes on answers (POST /api/feedback)
  actions: null, // the last answer's actions (an AnswerActions), the only one that can be regenerated
};
const follow = new FollowScroll(transcript);
const composer = new Composer(
  { form, question, attach: $("#attach"), input: $("#file-input"), list: $("#attachments") },
  (key, values, { alert = false } = {}) => say(alert ? alertRegion : announcer, t(key, values)),
);

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

/** Say what went wrong with the answer in `turn`, and offer Retry, which calls `retry()` (after `waitSeconds`). */
function showProblem(turn, key, values, retry, waitSeconds = null) {
  localize(turn.status, key, values);
  turn.status.classList.add("error");
  say(alertRegion, t(key, values));
  offerRetry(turn, waitSeconds, () => {
    if (!state.session) retry();
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

/** POST the question in trace `traceId`, continuing the conversation as the server allows; resolves to {response, omitted}. */
async function post(asked, traceId, signal) {
  if (state.history && state.conversation.conversationId === null) {
    const created = await createConversation(state.apiBase, signal); // the first question starts one
    if (!created.ok) return { response: created, omitted: 0 };
    enter((await created.json()).id);
  }
  let keep = Infinity;
  for (;;) {
    const { body, omitted, sent } = state.conversation.request(asked, { chain: state.chain, limits: state.limits, keep });
    const response = await postChat(state.apiBase, body, signal, traceId);
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

/** Ask `asked` ({text, attachments}); `typing`: it was sent from the text box (so focus goes back there). */
async function ask(asked, typing) {
  if (state.session || state.apiBase === null) return;
  state.calls?.expire();
  state.actions?.dropRegenerate();
  const progress = new Progress(asked.text); // a new trace
  await showAnswer(progress, typing, (signal) => post(asked, progress.traceId, signal), { question: asked });
}

/**
 * Ask the last question again from the same context; the new answer replaces `answer` (whose response
 * is `responseId`) on the page. In a kept conversation the server replaces it for good: the
 * conversation then holds the question once, and the new answer.
 */
async function regenerate(asked, answer, responseId) {
  if (state.session || state.apiBase === null) return;
  state.conversation.forgetLast();
  state.actions = null;
  answer.article.remove();
  await askOver(asked, state.conversation.conversationId === null ? null : responseId);
}

/** Ask `asked` again, its question already on the page; in a kept conversation, in place of the answer `replacing`. */
async function askOver(asked, replacing = null) {
  const progress = new Progress(asked.text); // a new answer, a new trace
  const regenerated = async (signal) => {
    const body = state.conversation.regenerate(replacing);
    return { response: await postChat(state.apiBase, body, signal, progress.traceId), omitted: 0 };
  };
  const open = replacing === null ? (signal) => post(asked, progress.traceId, signal) : regenerated;
  const again = (question) => askOver(question, replacing);
  await showAnswer(progress, false, open, { asked: false, question: asked, again });
}

/** Go on with the answer to `text` whose response `responseId` asked for approvals, as the user decided. */
async function answerApprovals(text, responseId, approvals) {
  if (state.session || state.apiBase === null) return;
  const body = state.conversation.approvals(responseId, approvals);
  const progress = new Progress(text);
  const posted = (signal) => postChat(state.apiBase, body, signal, progress.traceId);
  const open = async (signal) => ({ response: await posted(signal), omitted: 0 });
  await showAnswer(progress, false, open, { asked: false });
}

/** Continue the answer a reload of the page cut off: its whole stream again, from the start, in its trace. */
async function continuePending({ question: text, responseId, traceId }) {
  const progress = new Progress(text, traceId);
  progress.responseId = responseId;
  const resumed = (signal) => resumeChat(state.apiBase, responseId, null, signal, traceId);
  const open = async (signal) => ({ response: await resumed(signal), omitted: 0 });
  await showAnswer(progress, false, open);
}

/**
 * Show the answer to `progress.question` that `open(signal)` starts ({response, omitted});
 * `asked`: show the question as the user's turn (not for an answer that goes on after approvals,
 * or is asked again, nor for one a conversation showed already); `question`: the question with its
 * attachments, when there is one to ask again (Retry, Regenerate); `again(question)`: how to ask it
 * again after a key was given (and, for a question not shown again, on Retry); `drawn`: the
 * answer's turn and view, when a conversation drew its start already ({answer, view}).
 */
async function showAnswer(progress, typing, open, { asked = true, question: full = null, again = null, drawn = null } = {}) {
  const text = progress.question;
  const question = full ?? { text, attachments: [] };
  alertRegion.replaceChildren();
  const userTurn = createTurn(template, "user");
  userTurn.body.textContent = text;
  if (question.attachments.length) userTurn.body.after(thumbnails(question.attachments));
  const answer = drawn?.answer ?? createTurn(template, "assistant");
  localize(answer.status, "thinking");
  if (drawn === null) transcript.append(...(asked ? [userTurn.article] : []), answer.article);
  showTrace(answer, progress.traceId);
  const view = drawn?.view ?? new AnswerView(answer, (approvals) => answerApprovals(text, progress.responseId, approvals));
  state.calls = view.calls;
  const started = performance.now();
  let firstAt = null;
  const session = new AnswerSession({
    progress,
    resumable: state.resumable,
    open: async (signal) => {
      const { response, omitted } = await open(signal);
      if (omitted > 0) localize(answer.note, "trimmed", { count: omitted });
      return response;
    },
    resume: (responseId, after, signal) => resumeChat(state.apiBase, responseId, after, signal, progress.traceId),
    cancel: (responseId) => cancelChat(state.apiBase, responseId, progress.traceId),
    onEvent: (event) => {
      if (event.type === "response.created" && state.resumable) savePending(sessionStorage, progress);
      if (view.show(event)) firstAt = performance.now();
    },
    onState: (name) => {
      if (name === "reconnecting") localize(answer.status, "reconnecting");
      else if (name === "streaming") localize(answer.status, firstAt === null ? "thinking" : null);
    },
  });
  state.session = session;
  setBusy(answer, true);
  follow.start();
  let askAgain = false;
  try {
    const outcome = await session.run();
    view.render();
    const retry = () => {
      const anew = asked || !again; // asked as a new question, its turn drawn again; else `again`, its turn kept
      if (anew) answer.article.previousElementSibling?.remove();
      answer.article.remove();
      if (anew) ask(question, false);
      else again(question);
    };
    askAgain = await showOutcome(outcome, { answer, view, question, started, firstAt, session, full, retry });
  } finally {
    if (state.session === session) state.session = null;
    if (!state.leaving) clearPending(sessionStorage);
    state.history?.load(); // a title, or the order, may have changed
    follow.stop();
    setBusy(answer, false, typing);
    if (askAgain) {
      userTurn.article.remove();
      answer.article.remove();
      (again ?? ((question) => ask(question, typing)))(question);
    } else if (answer.article.isConnected && !answer.status.classList.contains("error")) {
      say(announcer, answerText(answer));
    }
    const [waiting] = view.calls.pending;
    if (waiting && answer.article.isConnected) {
      view.calls.open();
      waiting.buttons[0].focus({ preventScroll: true });
    }
  }
}

/** Show how an answer ended (see AnswerSession); true when it should be asked again (a key was given). */
async function showOutcome(outcome, { answer, view, question, started, firstAt, session, full, retry }) {
  const { kind } = outcome;
  if (kind === "stopped") {
    localize(answer.status, "stopped");
  } else if (kind === "badData") {
    showProblem(answer, "badData", {}, retry);
  } else if (kind === "refused" && outcome.response.status === 401 && signsIn()) {
    await signIn(); // leaves for the sign-in page, which brings the user back signed in
  } else if (kind === "refused" && outcome.response.status === 401) {
    if (functionKey()) saveFunctionKey(null); // the saved key was refused
    if (await askForKey()) return true;
    const { code, message } = await errorOf(outcome.response);
    showProblem(answer, "failed", { code, message }, retry);
  } else if (kind === "refused" || kind === "resumeRefused") {
    const { code, message, retryAfter } = await errorOf(outcome.response);
    // The issuer's keys could not be fetched (503): the user is signed in, so no sign-in page, a Retry.
    const key = code === "auth_keys_unavailable" ? "signInUnavailable" : "failed";
    showProblem(answer, key, { code, message }, retry, kind === "refused" ? retryAfter : null);
  } else if (kind === "stalled") {
    session.abandon();
    showProblem(answer, "stalled", {}, retry);
  } else if (kind === "cut") {
    session.abandon();
    const never = firstAt === null && session.progress.responseId === null;
    showProblem(answer, never ? "network" : "cut", {}, retry);
  } else if (outcome.terminal.type === "error") {
    const { code, message } = outcome.terminal.data;
    showProblem(answer, "failed", { code, message }, retry);
  } else {
    const { status, incomplete_reason: reason, response_id: responseId, usage } = outcome.terminal.data;
    const key = { incomplete: "incomplete", cancelled: "stopped", requires_approval: "needsApproval" }[status];
    localize(answer.status, key ?? null, { reason });
    state.conversation.remember(question, view.text, responseId);
    showMetrics(answer, { started, firstAt, ended: performance.now(), usage });
    if (["completed", "incomplete"].includes(status) && view.text.trim()) {
      offerActions(answer, view, responseId, full);
    }
  }
  return false;
}

/** Regenerate (when there is a `question` to ask again), Copy and the ratings under the last finished answer. */
function offerActions(answer, view, responseId, question) {
  state.actions?.dropRegenerate();
  const again = question ? () => regenerate(question, answer, responseId) : null;
  state.actions = actionsFor(answer, view, responseId, again);
}

/** Copy and the ratings (and Regenerate, with `regenerate`) under an answer. */
function actionsFor(answer, view, responseId, regenerate) {
  return new AnswerActions(answer, {
    text: () => view.text,
    regenerate,
    sendFeedback:
      state.feedback && responseId
        ? (rating, comment) => postFeedback(state.apiBase, { response_id: responseId, rating, comment })
        : null,
    say: (key, values, { alert = false } = {}) => say(alert ? alertRegion : announcer, t(key, values)),
  });
}

/** What a screen reader hears of a finished answer: all of it, once (with any approval it asks for). */
function answerText(turn) {
  const asked = [...turn.calls.querySelectorAll(".approval p")].map((question) => question.textContent).join("\n");
  const parts = [turn.refusal.hidden ? "" : turn.refusal.innerText, turn.body.innerText, asked, turn.status.textContent];
  return parts.filter((part) => part.trim()).join("\n");
}

const composition = watchComposition(question);
question.addEventListener("keydown", (event) => {
  if (isSendKey(event, composition)) {
    event.preventDefault();
    form.requestSubmit();
  }
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (state.session || state.apiBase === null) return;
  const typing = event.submitter !== send;
  await composer.pending; // files still being prepared go with this question
  const text = question.value.trim();
  if ((!text && composer.attachments.length === 0) || state.session) return;
  question.value = "";
  ask({ text, attachments: composer.take() }, typing);
});

/** Stop the answer being read, whatever it is doing (see AnswerSession.stop). */
function stopAnswer() {
  state.session?.stop();
}

stop.addEventListener("click", stopAnswer);

addEventListener("pagehide", () => {
  state.leaving = true;
});
addEventListener("pageshow", () => {
  state.leaving = false; // back from the back/forward cache: still this page's answer
});

/** Leave the transcript empty for another conversation: the answer being read stops. */
function clearTranscript() {
  stopAnswer();
  state.calls = null;
  state.actions = null;
  state.session = null; // ready for the next question now; the stopped one finishes on its own
  state.conversation.clear();
  composer.clear();
  transcript.replaceChildren();
  alertRegion.replaceChildren();
}

/** A new conversation (kept by the server from its first question on). */
function startNew() {
  clearTranscript();
  state.history?.show(null);
  if (state.history && conversationIn(location.hash) !== null) location.hash = addressOf(null);
}

$("#new-chat").addEventListener("click", () => {
  startNew();
  question.focus();
});

/** The conversation the page is in now is `id` (its address, and its entry in the list). */
function enter(id) {
  state.conversation.conversationId = id;
  state.history?.show(id);
  if (conversationIn(location.hash) !== id) location.hash = addressOf(id);
}

/**
 * Open a kept conversation: its messages drawn as they were, and an answer still being written
 * followed (in its trace, when `pending` is the one a reload of this tab left unfinished).
 */
async function openConversation(id, pending = null) {
  clearTranscript();
  enter(id);
  const notice = createTurn(template, "assistant");
  let response;
  try {
    response = await getConversation(state.apiBase, id);
  } catch {
    response = null;
  }
  if (state.conversation.conversationId !== id) return; // another was opened meanwhile
  if (response === null || !response.ok) {
    const { code, message } = response ? await errorOf(response) : { code: "network", message: "" };
    const key = response?.status === 404 ? "conversationGone" : "conversationFailed";
    localize(notice.status, key, { code, message });
    notice.status.classList.add("error");
    transcript.append(notice.article);
    say(alertRegion, t(key, { code, message }));
    return;
  }
  const { messages, active_response_id: active } = await response.json();
  const { last, asked } = drawMessages(messages, active === null);
  follow.toEnd();
  if (active && state.resumable) {
    const progress = new Progress(asked.text, pending?.responseId === active ? pending.traceId : undefined);
    progress.responseId = active;
    const resumed = (signal) => resumeChat(state.apiBase, active, null, signal, progress.traceId);
    const resume = async (signal) => ({ response: await resumed(signal), omitted: 0 });
    // An answer to the last question (not one after approvals) can be regenerated once it ends.
    showAnswer(progress, false, resume, { asked: false, drawn: last, question: last ? null : asked });
  } else if (last) {
    state.calls = last.view.calls;
    last.view.calls.open(); // an approval it still waits for can be given here
  }
}

/**
 * Draw a conversation's messages (GET /api/conversations/{id}); the last answer's {answer, view} (null
 * when the last message is a question) and the last question ({text, attachments}). Each answer has
 * Copy and the ratings; the last one, when it answers the last question, Regenerate too, with `regenerable`
 * (no answer is being generated).
 */
function drawMessages(messages, regenerable) {
  let last = null;
  let asked = { text: "", attachments: [] };
  let answering = null; // the question the next answer answers (none after an answer: approvals go on)
  for (const message of messages) {
    if (message.role === "user") {
      const turn = createTurn(template, "user");
      turn.body.textContent = message.text;
      const attachments = message.attachments.map(attachmentOf);
      if (attachments.length) turn.body.after(thumbnails(attachments));
      transcript.append(turn.article);
      asked = answering = { text: message.text, attachments };
      last = null;
      continue;
    }
    const answer = createTurn(template, "assistant");
    transcript.append(answer.article);
    const { text } = asked;
    const view = new AnswerView(answer, (approvals) => answerApprovals(text, message.response_id, approvals));
    view.replay(message);
    const again = regenerable && answering && message === messages.at(-1) ? answering : null;
    if (view.text.trim()) {
      const regenerateIt = again && (() => regenerate(again, answer, message.response_id));
      const actions = actionsFor(answer, view, message.response_id, regenerateIt);
      if (again) state.actions = actions; // the last answer's: a new question drops its Regenerate
    }
    answering = null;
    last = { answer, view };
  }
  return { last, asked };
}

/** An attachment of a kept question ({kind, url} or {kind, name}), as the composer's thumbnails take it. */
function attachmentOf({ kind, url, name }) {
  return kind === "image" ? { kind, dataUrl: url, name: t("image") } : { kind, name };
}

addEventListener("hashchange", () => {
  if (!state.history) return;
  const id = conversationIn(location.hash);
  if (id === state.conversation.conversationId) return; // the page put it there itself
  if (id === null) startNew();
  else openConversation(id);
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
state.feedback = status?.feedback === true;
composer.setLimits(status?.limits);
question.maxLength = state.limits.max_message_chars;
banner.hidden = status?.upstream !== "demo";
document.body.dataset.ready = "true";
const pending = takePending(sessionStorage);
const shown = conversationIn(location.hash);
if (status?.conversations === true) {
  const speak = (region, text) => say(region === "alert" ? alertRegion : announcer, text);
  const onDeleted = (id) => {
    if (id === state.conversation.conversationId) startNew();
  };
  state.history = new History({ document, apiBase: state.apiBase, say: speak, onDeleted, drawer });
  state.history.start();
  if (shown !== null) openConversation(shown, pending); // an answer still being written goes on there
}
if (pending && state.resumable && !(state.history && shown !== null)) continuePending(pending);
