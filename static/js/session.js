// One answer being read, from the request that starts it to its end, as a small state machine:
//
//   opening ──> streaming ──> done
//                 │  ^
//                 v  │  (a cut, when the server can resume: wait, then read on after the last event;
//              reconnecting   a stream the server handed off with `stream.resume`: read on at once)
//
// and from any state, stop() ──> stopping ──> done. No DOM: the page passes in how to open,
// resume and cancel, and what to do with each event, so node's test runner drives it too.
import { BACKOFF_SECONDS, wait } from "./resume.js";
import { readEvents, StreamDataError } from "./stream.js";

export const STATES = ["opening", "streaming", "reconnecting", "stopping", "done"];
export const MAX_IDLE_HAND_OFFS = 3; // hand-offs in a row that bring no new event before the page gives up

/**
 * How the session ended:
 * - {kind: "refused", response}: the server answered the request with an HTTP error (read it with errorOf);
 * - {kind: "ended", terminal}: the stream's one terminal event;
 * - {kind: "cut"}: the stream broke and could not be resumed (given up after the backoff);
 * - {kind: "resumeRefused", response}: a resume was answered with an HTTP error;
 * - {kind: "stopped"}: stop() was called;
 * - {kind: "stalled"}: the server handed the stream off MAX_IDLE_HAND_OFFS times in a row without a new event;
 * - {kind: "badData"}: the server sent an event that is not JSON (the stream was cancelled).
 */
export class AnswerSession {
  /**
   * @param {object} options
   * @param {import("./resume.js").Progress} options.progress where the answer got: its id and cursor
   * @param {(signal: AbortSignal) => Promise<Response>} options.open the request that starts the stream
   * @param {(responseId: string, after: number|null, signal: AbortSignal) => Promise<Response>} options.resume
   * @param {(responseId: string) => Promise<void>} options.cancel ask the server to stop generating
   * @param {(event: object) => void} options.onEvent each event, once, in order
   * @param {(state: string) => void} [options.onState]
   * @param {boolean} options.resumable the server can resume a cut stream and cancel a response
   * @param {number[]} [options.backoff] seconds before each reconnection; one that brings events starts over
   * @param {(seconds: number, signal: AbortSignal) => Promise<void>} [options.sleep]
   */
  constructor({ progress, open, resume, cancel, onEvent, onState = () => {}, resumable, backoff, sleep }) {
    Object.assign(this, { progress, open, resume, cancelResponse: cancel, onEvent, onState, resumable });
    this.backoff = backoff ?? BACKOFF_SECONDS;
    this.sleep = sleep ?? wait;
    this.controller = new AbortController();
    this.state = "opening";
  }

  get signal() {
    return this.controller.signal;
  }

  /** Read the answer to its end; resolves to how it ended (see the class). Never rejects on a stop. */
  async run() {
    try {
      const response = await this.open(this.signal);
      if (!response.ok) return this.finish({ kind: "refused", response });
      this.enter("streaming");
      const outcome = await this.readResuming(response.body);
      if (outcome.kind === "ended" && outcome.terminal.type === "error") this.abandon(); // it may still run upstream
      return this.finish(outcome);
    } catch (error) {
      if (this.signal.aborted) return this.finish({ kind: "stopped" });
      if (error instanceof StreamDataError) return this.finish({ kind: "badData" });
      return this.finish({ kind: "cut" });
    }
  }

  /**
   * Stop now, whatever the state: the request or stream is aborted at once. A response the
   * server named is cancelled too, in every mode (a host may never pass an aborted fetch on, and
   * in background mode the response goes on by design; a cancel of any of an answer's responses
   * stops the whole answer); one it has not named yet is cancelled by the server itself.
   */
  stop() {
    if (this.state === "done" || this.state === "stopping") return;
    this.enter("stopping");
    if (this.progress.responseId) this.cancelResponse(this.progress.responseId);
    this.controller.abort();
  }

  /** Gave up on a cut answer: a background response would go on generating for nobody. */
  abandon() {
    if (this.resumable && this.progress.responseId) this.cancelResponse(this.progress.responseId);
  }

  /**
   * Read to the terminal event, resuming after cuts while the server can; the outcome. A stream
   * the server ended on purpose (`stream.resume`, at its time limit) is continued at once.
   */
  async readResuming(body) {
    let moved = false; // the stream being read brought an event other than a hand-off
    let handedOff = false;
    let idleHandOffs = 0; // hand-offs in a row whose stream brought nothing new
    const see = (event) => {
      handedOff = event.type === "stream.resume";
      moved ||= !handedOff;
      this.onEvent(event);
    };
    const accept = (event) => this.progress.accept(event);
    let terminal = await this.readOrCut(body, see, accept);
    let attempt = 0;
    while (terminal === null && this.canResume()) {
      if (handedOff) {
        idleHandOffs = moved ? 0 : idleHandOffs + 1;
        if (idleHandOffs >= MAX_IDLE_HAND_OFFS) return { kind: "stalled" };
      } else {
        if (attempt >= this.backoff.length) break;
        this.enter("reconnecting");
        await this.sleep(this.backoff[attempt++], this.signal);
      }
      let response;
      try {
        response = await this.resume(this.progress.responseId, this.progress.lastId, this.signal);
      } catch (error) {
        if (this.signal.aborted) throw error;
        handedOff = false;
        continue; // still offline: wait longer
      }
      if (!response.ok) return { kind: "resumeRefused", response };
      this.enter("streaming");
      moved = false;
      handedOff = false;
      terminal = await this.readOrCut(response.body, see, accept);
      if (moved) attempt = 0; // it got somewhere: a later cut starts the backoff over
    }
    return terminal === null ? { kind: "cut" } : { kind: "ended", terminal };
  }

  canResume() {
    return this.resumable && this.progress.responseId !== null;
  }

  /** readEvents, with a broken connection read as a cut (a stream without its terminal event). */
  async readOrCut(body, onEvent, accept) {
    try {
      return (await readEvents(body, onEvent, accept)).terminal;
    } catch (error) {
      if (this.signal.aborted || error instanceof StreamDataError) throw error;
      return null;
    }
  }

  enter(state) {
    if (this.state === "stopping" && state !== "done") return;
    this.state = state;
    this.onState(state);
  }

  finish(outcome) {
    this.enter("done");
    return outcome;
  }
}
