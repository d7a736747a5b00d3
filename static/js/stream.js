// Reads the relay's Server-Sent Events from a fetch() body: reader -> UTF-8 decoder ->
// SSE parser -> events. No DOM, no fetch: it takes any ReadableStream of bytes, so it
// runs the same in the browser and under node's test runner.
import { createParser } from "../vendor/eventsource-parser/index.js";

export const TERMINAL_TYPES = new Set(["response.completed", "error"]);

/** The server sent an event whose data is not JSON: the stream cannot be read on. */
export class StreamDataError extends Error {}

/**
 * Calls onEvent({type, id, data}) for each event as it arrives that `accept(event)` takes
 * (default: all), and resolves to {terminal} (the one terminal event) or {terminal: null}
 * when the stream ended without one, which means it was cut. Comments (": ping") are not
 * events. A read that fails (network error, abort) rejects; data that is not JSON rejects
 * with StreamDataError, after cancelling the body (so the server's stream ends too).
 */
export async function readEvents(body, onEvent, accept = () => true) {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  let terminal = null;
  let failure = null;
  const parser = createParser({
    onEvent(message) {
      if (terminal || failure) return;
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        failure = new StreamDataError("The server sent an event that is not JSON");
        return;
      }
      const event = { type: message.event ?? data.type, id: message.id ?? null, data };
      if (!accept(event)) return;
      if (TERMINAL_TYPES.has(event.type)) terminal = event;
      onEvent(event);
    },
  });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
      if (failure) throw failure;
      if (terminal) break;
    }
    parser.feed(decoder.decode());
  } catch (error) {
    if (error instanceof StreamDataError) await reader.cancel(error).catch(() => {});
    throw error;
  } finally {
    reader.releaseLock();
  }
  if (failure) throw failure;
  return { terminal };
}
