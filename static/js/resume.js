// Resumable streams (RESUMABLE_STREAMS on the server): how far an answer got, when to try
// again after a cut, and the unfinished answer a reload continues. No DOM, no fetch.
import { isTraceId, newTraceId } from "./trace.js";

/** Seconds to wait before each reconnection after a cut; a reconnection that brings events starts over. */
export const BACKOFF_SECONDS = [0.5, 1, 2, 4];

const PENDING = "pendingAnswer";

/**
 * How far an answer's stream got: the response being read and the id of its last event seen
 * (the resume cursor). An answer with tool calls has a response per round, each numbering its
 * events from 0: the cursor is the current round's. Every request for the answer is in its trace.
 */
export class Progress {
  constructor(question, traceId = newTraceId()) {
    this.question = question;
    this.traceId = traceId;
    this.responseId = null;
    this.lastId = null;
  }

  /**
   * Whether to show an event: one whose id is not above the last seen of its response was shown
   * already (a server that sends it again is not trusted to be right); one without an id (the
   * relay made it) is always new. An accepted id becomes the cursor; a new response (the next
   * round) starts a new one.
   */
  accept(event) {
    const created = event.type === "response.created" && typeof event.data.response_id === "string";
    if (created && event.data.response_id !== this.responseId) {
      this.responseId = event.data.response_id;
      this.lastId = null;
    }
    if (event.id !== null && /^\d+$/.test(event.id)) {
      const id = Number(event.id);
      if (this.lastId !== null && id <= this.lastId) return false;
      this.lastId = id;
    }
    return true;
  }
}

/** Keep an unfinished answer across a reload of the page (this tab only). */
export function savePending(storage, progress) {
  const { question, responseId, traceId } = progress;
  storage.setItem(PENDING, JSON.stringify({ question, responseId, traceId }));
}

/** The unfinished answer a reload left behind, once ({question, responseId, traceId}); null when there is none. */
export function takePending(storage) {
  const saved = storage.getItem(PENDING);
  storage.removeItem(PENDING);
  try {
    const { question, responseId, traceId } = JSON.parse(saved ?? "null") ?? {};
    if (typeof question !== "string" || !/^resp_[A-Za-z0-9_-]{1,200}$/.test(responseId ?? "")) return null;
    return { question, responseId, traceId: isTraceId(traceId) ? traceId : newTraceId() };
  } catch {
    return null;
  }
}

export function clearPending(storage) {
  storage.removeItem(PENDING);
}

/** Resolves after `seconds`; rejects with the signal's reason if it is aborted first. */
export function wait(seconds, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", stop);
      resolve();
    }, seconds * 1000);
    const stop = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", stop, { once: true });
  });
}
