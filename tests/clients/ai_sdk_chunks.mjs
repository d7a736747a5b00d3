// Reads a UI message stream body from stdin with the `ai` package's own parts: every chunk
// checked by `uiMessageChunkSchema`, the message assembled by `readUIMessageStream`.
import { parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema } from "ai";

const pieces = [];
for await (const piece of process.stdin) pieces.push(piece);
const body = new Uint8Array(Buffer.concat(pieces));
const invalid = [];
const chunks = parseJsonEventStream({
  stream: new ReadableStream({ start(controller) { controller.enqueue(body); controller.close(); } }),
  schema: uiMessageChunkSchema,
}).pipeThrough(new TransformStream({
  transform(parsed, controller) {
    if (parsed.success) controller.enqueue(parsed.value);
    else invalid.push(String(parsed.error));
  },
}));
const messages = [];
for await (const message of readUIMessageStream({ stream: chunks, terminateOnError: true })) messages.push(message);
process.stdout.write(JSON.stringify({ invalid, messages: messages.slice(-1) }));
