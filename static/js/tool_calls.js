// One turn's tool use as it happens: each function call the relay runs (its name and
// arguments with a spinner, then its result, collapsed), each MCP call the model service makes,
// and the prompts that ask the user to approve an MCP call (Approve / Deny buttons, reachable
// by keyboard and named for screen readers).
import { localize, localizeLabel } from "./i18n.js";

let approvalsAsked = 0; // numbers each prompt's id, for its aria-labelledby

export class ToolCalls {
  /**
   * @param {HTMLElement} list the turn's list of calls (a <ul>)
   * @param {(decisions: {approval_request_id: string, approve: boolean}[]) => void} onDecide
   *   called once every approval this turn asked for has been decided
   */
  constructor(list, onDecide) {
    this.list = list;
    this.onDecide = onDecide;
    this.entries = new Map(); // by call id (or MCP item id): {item, summary, state, output}
    this.approvals = []; // {id, buttons, decision}
  }

  /** tool.call: a function call is about to run. */
  call({ call_id: id, name, arguments: args }) {
    const entry = this.entry(id);
    entry.name = name;
    this.setState(entry, "toolRunning", { name });
    entry.args.textContent = args;
  }

  /** tool.result: what a call gave (a replayed one replaces the first). */
  result({ call_id: id, name, output }) {
    const entry = this.entry(id);
    entry.name ??= name;
    this.setState(entry, isError(output) ? "toolFailed" : "toolDone", { name: entry.name });
    entry.output.textContent = pretty(output);
    entry.output.hidden = false;
  }

  /** response.mcp_call.in_progress / .completed / .failed: a call the model service makes itself. */
  mcp({ type, item_id: id, name, server_label: server }) {
    const entry = this.entry(id ?? `mcp-${this.entries.size}`);
    const key = { "response.mcp_call.in_progress": "mcpRunning", "response.mcp_call.completed": "mcpDone" }[type];
    this.setState(entry, key ?? "mcpFailed", { name: name ?? "?", server: server ?? "?" });
  }

  /** approval.request: ask the user whether the model service may make an MCP call. */
  ask({ approval_request_id: id, server_label: server, name, arguments: args }) {
    if (this.approvals.some((approval) => approval.id === id)) return;
    const item = document.createElement("li");
    item.className = "approval";
    const group = document.createElement("div");
    group.setAttribute("role", "group");
    const question = document.createElement("p");
    question.id = `approval-${++approvalsAsked}`;
    localize(question, "approvalAsk", { server, name });
    group.setAttribute("aria-labelledby", question.id);
    const code = document.createElement("pre");
    code.textContent = pretty(args);
    const buttons = document.createElement("div");
    buttons.className = "buttons";
    const approval = { id, server, name, buttons: [], decision: null, question };
    for (const [key, approve] of [["approve", true], ["deny", false]]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = key;
      localize(button, key);
      localizeLabel(button, key === "approve" ? "approveCall" : "denyCall", { server, name });
      button.disabled = true; // until the stream that asks has ended (see open)
      button.addEventListener("click", () => this.decide(approval, approve));
      buttons.append(button);
      approval.buttons.push(button);
    }
    group.append(question, code, buttons);
    item.append(group);
    this.list.append(item);
    this.list.hidden = false;
    this.approvals.push(approval);
  }

  /** The approvals still waiting for the user. */
  get pending() {
    return this.approvals.filter((approval) => approval.decision === null);
  }

  /** The stream that asked has ended: the user may decide now. */
  open() {
    for (const approval of this.pending) {
      for (const button of approval.buttons) button.disabled = false;
    }
  }

  /** Give up asking (a new question was sent): the buttons no longer do anything. */
  expire() {
    for (const approval of this.pending) {
      for (const button of approval.buttons) button.disabled = true;
    }
  }

  /** An approval decided before (shown when a conversation is opened again): its decision, no buttons to press. */
  settle(id, approve) {
    const approval = this.approvals.find((entry) => entry.id === id);
    if (!approval || approval.decision !== null) return;
    approval.decision = approve;
    for (const button of approval.buttons) button.disabled = true;
    localize(approval.question, approve ? "approved" : "denied", { server: approval.server, name: approval.name });
  }

  decide(approval, approve) {
    if (approval.decision !== null || approval.buttons[0].disabled) return;
    approval.decision = approve;
    for (const button of approval.buttons) button.disabled = true;
    localize(approval.question, approve ? "approved" : "denied", { server: approval.server, name: approval.name });
    if (this.pending.length === 0) {
      this.onDecide(this.approvals.map(({ id, decision }) => ({ approval_request_id: id, approve: decision })));
    }
  }

  entry(id) {
    let entry = this.entries.get(id);
    if (entry) return entry;
    const item = document.createElement("li");
    item.className = "call";
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    const spinner = document.createElement("span");
    spinner.className = "spinner";
    spinner.setAttribute("aria-hidden", "true");
    const label = document.createElement("span");
    const args = document.createElement("code");
    args.className = "arguments";
    summary.append(spinner, label, " ", args); // the name and arguments show while the result is collapsed
    const output = document.createElement("pre");
    output.className = "output";
    output.hidden = true;
    details.append(summary, output);
    item.append(details);
    this.list.append(item);
    this.list.hidden = false;
    entry = { item, label, args, output, name: null };
    this.entries.set(id, entry);
    return entry;
  }

  setState(entry, key, values) {
    entry.item.dataset.state = key.endsWith("Running") ? "running" : key.endsWith("Failed") ? "failed" : "done";
    localize(entry.label, key, values);
  }
}

function isError(output) {
  try {
    const value = JSON.parse(output);
    return value !== null && typeof value === "object" && !Array.isArray(value) && "error" in value;
  } catch {
    return false;
  }
}

/** JSON indented for reading; anything else as it is. */
function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
