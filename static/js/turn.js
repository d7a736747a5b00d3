// One turn of the transcript, made from the page's <template id="turn">: its elements, the
// metrics line and a Retry button. Every label is localized, so a language switch relabels it.
import { localize } from "./i18n.js";

/** A new turn's elements (not yet in the page). */
export function createTurn(template, role) {
  const article = template.content.firstElementChild.cloneNode(true);
  article.classList.add(role);
  const part = (selector) => article.querySelector(selector);
  localize(part(".who"), role === "user" ? "you" : "assistant");
  localize(part(".refusal-label"), "refusal");
  return {
    article,
    body: part(".body"),
    status: part(".status"),
    actions: part(".actions"),
    note: part(".note"),
    metrics: part(".metrics"),
    trace: part(".trace"),
    thinking: part(".thinking"),
    thinkingLabel: part(".thinking summary"),
    thinkingBody: part(".thinking-body"),
    calls: part(".calls"),
    refusal: part(".refusal"),
    refusalText: part(".refusal-text"),
  };
}

/** Time to first token, tokens per second and usage; times in performance.now() milliseconds. */
export function showMetrics(turn, { started, firstAt, ended, usage }) {
  const parts = [];
  if (firstAt !== null) parts.push(["ttft", { ms: Math.round(firstAt - started) }]);
  const seconds = (ended - (firstAt ?? started)) / 1000;
  if (usage) {
    if (seconds > 0 && usage.output_tokens > 0) parts.push(["rate", { rate: (usage.output_tokens / seconds).toFixed(1) }]);
    parts.push(["usage", { input: usage.input_tokens, output: usage.output_tokens, total: usage.total_tokens }]);
  }
  const spans = parts.map(([key, values]) => {
    const span = document.createElement("span");
    localize(span, key, values);
    return span;
  });
  turn.metrics.replaceChildren(...spans.flatMap((span, index) => (index ? [" · ", span] : [span])));
}

/** The answer's trace id, which finds it in Application Insights (and in the relay's stream record). */
export function showTrace(turn, traceId) {
  localize(turn.trace, "trace", { id: traceId });
  turn.trace.dataset.traceId = traceId;
}

/** A Retry button for the turn; with `waitSeconds` (a 429's Retry-After) it counts down, disabled, until then. */
export function offerRetry(turn, waitSeconds, onRetry) {
  const retry = document.createElement("button");
  retry.type = "button";
  retry.className = "retry";
  retry.addEventListener("click", onRetry);
  turn.actions.append(retry);
  countDown(retry, Date.now() + (waitSeconds ?? 0) * 1000);
}

function countDown(button, until) {
  const left = Math.ceil((until - Date.now()) / 1000);
  button.disabled = left > 0;
  if (left <= 0) {
    localize(button, "retry");
    return;
  }
  localize(button, "retryIn", { seconds: left });
  setTimeout(() => countDown(button, until), until - Date.now() - (left - 1) * 1000); // at the next whole second
}
