// A front end on @ag-ui/client (1.0): the relay's RelayAgent (docs/examples/relay-agent.mjs, an
// HttpAgent with the resume extension) runs against the relay at RELAY_URL, its event verifier on.
// `node ag_ui.mjs <case> [question]` prints the agent's messages, the run's events (each checked
// with @ag-ui/core's EventSchema), its result, and every response's URL and status.
import { EventSchema } from "@ag-ui/core/schemas";
import { RelayAgent } from "../../docs/examples/relay-agent.mjs";
import { cutAfter } from "./cut.mjs";

// runHttpRequest's teardown cancels the reader of a body that failed, and rethrows what the
// cancel rejects with: in a browser a logged rejection, in node one that ends the process.
process.on("unhandledRejection", (reason) => {
  if (!(reason instanceof TypeError && reason.message === "network error")) throw reason;
});

const [scenario, question = "滋賀県について教えてください。"] = process.argv.slice(2);
const relay = process.env.RELAY_URL;
const key = process.env.FUNCTION_KEY ?? "";
const responses = [];

// With CUT_AFTER=n, the first stream's connection breaks after its n-th event, as a network drop would;
// a resume goes to RESUME_URL (another instance) when it is set.
let cutsLeft = process.env.CUT_AFTER ? 1 : 0;
async function testFetch(url, init) {
  const resuming = process.env.RESUME_URL && String(url).includes("/runs/");
  const target = resuming ? String(url).replace(relay, process.env.RESUME_URL) : String(url);
  const response = await fetch(target, init);
  responses.push({ url: target, status: response.status, lastEventId: init.headers?.["Last-Event-ID"] ?? null });
  if (!response.body || cutsLeft-- <= 0) return response;
  return cutAfter(response, Number(process.env.CUT_AFTER), (block) => block.includes("data:"));
}

// README: an agent on the relay.
const agent = new RelayAgent({ url: `${relay}/api/ag-ui`, headers: { "x-functions-key": key }, fetch: testFetch });
agent.threadId = process.env.THREAD_ID ?? "thread-test";
const events = [];
const invalid = [];
agent.subscribe({
  onEvent: ({ event }) => {
    events.push(event);
    const parsed = EventSchema.safeParse(event);
    if (!parsed.success) invalid.push(String(parsed.error));
  },
});
const MAP = { name: "show_map", description: "Shows a map of a city", parameters: { type: "object", properties: { city: { type: "string" } } } };

async function ask(text, options = {}) {
  agent.addMessage({ id: crypto.randomUUID(), role: "user", content: text });
  return await agent.runAgent(options);
}

const runs = [];
let error = null;
try {
  if (scenario === "ask") {
    runs.push(await ask(question));
  } else if (scenario === "client-tool") {
    runs.push(await ask(question, { tools: [MAP] }));
    const finished = events.findLast((event) => event.type === "RUN_FINISHED");
    for (const toolCallId of finished.outcome.pendingToolCallIds) {
      agent.addMessage({ id: crypto.randomUUID(), role: "tool", toolCallId, content: '{"shown":true}' });
    }
    runs.push(await agent.runAgent({ tools: [MAP] }));
  } else if (scenario === "approve" || scenario === "deny") {
    runs.push(await ask(question));
    const [interrupt] = events.findLast((e) => e.type === "RUN_FINISHED").outcome.interrupts;
    const resume = scenario === "approve"
      ? [{ interruptId: interrupt.id, status: "resolved", payload: { approved: true } }]
      : [{ interruptId: interrupt.id, status: "cancelled" }];
    runs.push(await agent.runAgent({ resume }));
  } else if (scenario === "stop") {
    agent.addMessage({ id: crypto.randomUUID(), role: "user", content: question });
    const running = agent.runAgent({}, { onTextMessageContentEvent: () => agent.abortRun() });
    runs.push(await running);
  } else {
    throw new Error(`unknown case ${scenario}`);
  }
} catch (failure) {
  error = String(failure?.message ?? failure);
}
process.stdout.write(JSON.stringify({ messages: agent.messages, events, invalid, runs, error, responses }));
