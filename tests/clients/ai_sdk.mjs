// A front end on the `ai` package (6), as useChat runs it: DefaultChatTransport and a minimal
// AbstractChat, against the relay at RELAY_URL (RESUME_URL: the instance a resume goes to).
// `node ai_sdk.mjs <case> [question]` prints the chat's messages, status and error, and every
// chunk the relay sent, each checked with uiMessageChunkSchema.
import { AbstractChat, DefaultChatTransport, parseJsonEventStream, uiMessageChunkSchema } from "ai";
import { cutAfter } from "./cut.mjs";

const [scenario, question = "滋賀県について教えてください。"] = process.argv.slice(2);
const relay = process.env.RELAY_URL;
const key = process.env.FUNCTION_KEY ?? "";
const bodies = []; // every response body's bytes, as they arrived

// What useChat keeps in React state, kept here in plain fields; `changed` resolves at each change.
class ChatState {
  status = "ready";
  error = undefined;
  messages = [];
  #waiters = [];
  changed = () => new Promise((resolve) => this.#waiters.push(resolve));
  #set(messages) { this.messages = messages; this.#waiters.splice(0).forEach((resolve) => resolve()); }
  pushMessage = (message) => this.#set([...this.messages, message]);
  popMessage = () => this.#set(this.messages.slice(0, -1));
  replaceMessage = (index, message) => this.#set(this.messages.map((m, i) => (i === index ? message : m)));
  snapshot = (value) => structuredClone(value);
}

class Chat extends AbstractChat {
  constructor(options) { super({ ...options, state: new ChatState() }); }
}

// Keeps what each response brought; with CUT_AFTER=n, the first answer's connection breaks after
// n text-delta chunks, as a network drop would.
let cutsLeft = process.env.CUT_AFTER ? 1 : 0;
async function recordingFetch(url, init) {
  let response = await fetch(url, init);
  if (!response.body) return response;
  if (cutsLeft-- > 0) {
    response = cutAfter(response, Number(process.env.CUT_AFTER), (block) => block.includes('"type":"text-delta"'));
  }
  const record = { url: String(url), status: response.status, bytes: [] };
  bodies.push(record);
  const body = response.body.pipeThrough(new TransformStream({
    transform(chunk, controller) {
      record.bytes.push(...chunk);
      controller.enqueue(chunk);
    },
  }));
  return new Response(body, { status: response.status, headers: response.headers });
}

// README: "Use it from your own front end" (the transport useChat is given).
const transport = new DefaultChatTransport({
  api: `${relay}/api/ai-sdk/chat`,
  headers: { "x-functions-key": key },
  fetch: recordingFetch,
  prepareReconnectToStreamRequest: ({ id }) => ({
    api: `${process.env.RESUME_URL ?? relay}/api/ai-sdk/chat/${id}/stream`,
  }),
});

const finishes = [];
const resuming = []; // the resumes the README's onFinish started
const chat = new Chat({
  id: process.env.CHAT_ID ?? "chat-test",
  transport,
  // README: a stream that ends without `finish` was cut, or handed off at the relay's time limit.
  onFinish: ({ isAbort, isDisconnect, isError, finishReason }) => {
    finishes.push({ isAbort, isDisconnect, isError, finishReason: finishReason ?? null });
    if (isDisconnect || (!isAbort && !isError && !finishReason)) resuming.push(chat.resumeStream());
  },
});

// README: the Stop of a resumable answer.
async function stopAnswer() {
  await chat.stop();
  const responseId = chat.lastMessage?.metadata?.responseId;
  if (responseId) await fetch(`${relay}/api/chat/${responseId}/cancel`, { method: "POST", headers: { "x-functions-key": key } });
}

async function settled() {
  while (resuming.length) await resuming.shift();
}

if (scenario === "ask") {
  await chat.sendMessage({ text: question });
} else if (scenario === "approve" || scenario === "deny") {
  await chat.sendMessage({ text: question });
  const asked = chat.lastMessage.parts.find((part) => part.state === "approval-requested");
  await chat.addToolApprovalResponse({ id: asked.approval.id, approved: scenario === "approve" });
  await chat.sendMessage();
} else if (scenario === "resume") {
  await chat.resumeStream();
} else if (scenario === "stop" || scenario === "stop-and-cancel") {
  const sending = chat.sendMessage({ text: question });
  const answering = () => chat.lastMessage?.role === "assistant" && chat.lastMessage.parts.some((part) => part.text);
  while (!answering()) await chat.state.changed();
  await (scenario === "stop" ? chat.stop() : stopAnswer());
  await sending;
} else {
  throw new Error(`unknown case ${scenario}`);
}
await settled();

const invalid = [];
const chunks = [];
for (const record of bodies) {
  const parsed = parseJsonEventStream({
    stream: new ReadableStream({ start(c) { c.enqueue(new Uint8Array(record.bytes)); c.close(); } }),
    schema: uiMessageChunkSchema,
  });
  const received = [];
  for await (const chunk of parsed) {
    if (chunk.success) received.push(chunk.value);
    else invalid.push(String(chunk.error));
  }
  chunks.push({ url: record.url, status: record.status, chunks: received });
}
process.stdout.write(JSON.stringify({
  status: chat.status,
  error: chat.error?.message ?? null,
  messages: chat.messages,
  finishes,
  responses: chunks,
  invalid,
}));
