// One assistant turn as its events arrive: the reasoning summary in a "thinking" block
// (open while the model thinks, collapsed once the answer starts), tool calls and approval
// prompts (tool_calls.js), the answer as Markdown with numbered citations, a refusal as plain
// text marked as one, and the web search status.
import { Citations } from "./citations.js";
import { localize } from "./i18n.js";
import { StreamingMarkdown } from "./markdown.js";
import { ToolCalls } from "./tool_calls.js";

export class AnswerView {
  /**
   * `turn`: the turn's elements (body, status, thinking, thinkingLabel, thinkingBody, calls, refusal, refusalText);
   * `onDecide(decisions)`: the user decided every approval this turn asked for.
   */
  constructor(turn, onDecide = () => {}) {
    this.turn = turn;
    this.calls = new ToolCalls(turn.calls, onDecide);
    this.citations = new Citations();
    this.markdown = new StreamingMarkdown(turn.body, this.citations);
    this.thinking = new StreamingMarkdown(turn.thinkingBody);
    this.reasoningPart = null;
    this.refusal = "";
    this.started = false; // the answer (text or refusal) has begun
  }

  /** The answer to remember for the next question: its text, or the refusal. */
  get text() {
    return this.markdown.text || this.refusal;
  }

  /** Shows one relayed event; true for the answer's first text or refusal. */
  show({ type, data }) {
    switch (type) {
      case "response.output_text.delta":
        this.markdown.append(data.delta);
        return this.start();
      case "response.refusal.delta":
        this.refusal += data.delta;
        this.turn.refusalText.textContent = this.refusal;
        this.turn.refusal.hidden = false;
        return this.start();
      case "response.reasoning_summary_text.delta":
        this.think(data);
        break;
      case "response.output_text.annotation.added":
        this.citations.add(data.annotation);
        this.markdown.refresh();
        break;
      case "response.web_search_call.in_progress":
      case "response.web_search_call.searching":
        localize(this.turn.status, "searching");
        break;
      case "response.web_search_call.completed":
        localize(this.turn.status, this.started ? null : "thinking");
        break;
      case "tool.call":
        this.calls.call(data);
        break;
      case "tool.result":
        this.calls.result(data);
        break;
      case "response.mcp_call.in_progress":
      case "response.mcp_call.completed":
      case "response.mcp_call.failed":
        this.calls.mcp(data);
        break;
      case "approval.request":
        this.calls.ask(data);
        break;
    }
    return false;
  }

  think({ delta, output_index: item, summary_index: part }) {
    const { thinking, thinkingLabel } = this.turn;
    if (thinking.hidden) {
      thinking.hidden = false;
      thinking.open = !this.started;
      localize(thinkingLabel, this.started ? "reasoning" : "reasoningLive");
    }
    // A new part of the summary (or of a later reasoning item) is a new paragraph.
    const partKey = `${item}:${part}`;
    if (this.reasoningPart !== null && partKey !== this.reasoningPart) this.thinking.append("\n\n");
    this.reasoningPart = partKey;
    this.thinking.append(delta);
  }

  start() {
    if (this.started) return false;
    this.started = true;
    localize(this.turn.status, null);
    this.turn.thinking.open = false;
    localize(this.turn.thinkingLabel, "reasoning");
    return true;
  }

  /**
   * Show an answer as GET /api/conversations/{id} gives it (a message of the conversation), through
   * the events its stream showed, so it is drawn as it was. An approval it asked for shows its
   * decision, or waits for one (`open()` the calls to ask).
   */
  replay({ text, refusal, citations, reasoning, calls }) {
    reasoning.forEach((delta, part) => this.think({ delta, output_index: 0, summary_index: part }));
    for (const call of calls) {
      if (call.type === "function_call") {
        this.calls.call(call);
        if (call.output !== null) this.calls.result(call);
      } else if (call.type === "mcp_call") {
        this.calls.mcp({ ...call, type: `response.mcp_call.${call.status === "failed" ? "failed" : "completed"}` });
      } else if (call.type === "approval_request") {
        this.calls.ask(call);
        if (call.approve !== null) this.calls.settle(call.approval_request_id, call.approve);
      }
    }
    if (refusal) this.show({ type: "response.refusal.delta", data: { delta: refusal } });
    if (text) this.show({ type: "response.output_text.delta", data: { delta: text } });
    for (const annotation of citations) this.show({ type: "response.output_text.annotation.added", data: { annotation } });
    this.render();
  }

  /** Render what is pending now (the stream ended or was stopped). */
  render() {
    this.markdown.render();
    if (!this.turn.thinking.hidden) this.thinking.render();
    if (!this.started) localize(this.turn.thinkingLabel, "reasoning");
  }
}
