// The conversation, and the request body that continues it. In a conversation the server keeps
// (`conversationId`), the question names it (`conversation_id`) and carries nothing else. Else,
// when the server keeps responses, the next question names the last one (`previous_response_id`);
// otherwise the earlier exchanges go back as the `input` list, the oldest left out first when
// the whole would pass the API's limits (GET /api/health gives them). A question is its text,
// or {text, attachments}: its photos and PDFs go as content parts (attachments.js).
import { contentParts } from "./attachments.js";

/** The relay's defaults, for a server that did not say (settings MAX_MESSAGES, ...). */
export const DEFAULT_LIMITS = { max_messages: 64, max_message_chars: 32000, max_body_bytes: 262144 };

const encoder = new TextEncoder();
const bytes = (value) => encoder.encode(JSON.stringify(value)).length;

/** `text` cut to `max` characters as the server counts them (code points). */
export function cutToChars(text, max) {
  if (text.length <= max) return text; // UTF-16 units never undercount code points
  return Array.from(text).slice(0, max).join("");
}

export class Conversation {
  constructor() {
    this.exchanges = []; // {question, answer}, oldest first
    this.responseId = null; // the last answered response, for previous_response_id
    this.conversationId = null; // a conversation the server keeps: it continues itself
  }

  /**
   * The body for `question` and how many earlier exchanges it leaves out. `chain`: name the
   * last response instead of sending the history. `keep`: send at most this many of the
   * latest exchanges (after the model said the conversation is too long for it).
   */
  request(question, { chain = true, limits = DEFAULT_LIMITS, keep = Infinity } = {}) {
    const asked = { role: "user", content: contentOf(question, Infinity) };
    const count = this.exchanges.length;
    if (this.conversationId !== null) {
      return { body: { input: [asked], conversation_id: this.conversationId }, omitted: 0, sent: count };
    }
    if (chain && this.responseId !== null && keep >= count) {
      return { body: { input: [asked], previous_response_id: this.responseId }, omitted: 0, sent: count };
    }
    const messages = this.exchanges.slice(count - Math.min(keep, count)).flatMap((exchange) => [
      { role: "user", content: contentOf(exchange.question, limits.max_message_chars) },
      { role: "assistant", content: cutToChars(exchange.answer, limits.max_message_chars) },
    ]);
    // Leave out the oldest exchanges while there are too many messages or bytes.
    const sizes = messages.map(bytes);
    let total = bytes({ input: [asked] }) + sizes.reduce((sum, size) => sum + size + 1, 0); // + 1: a comma each
    let first = 0;
    const tooLong = () => messages.length - first + 1 > limits.max_messages || total > limits.max_body_bytes;
    while (first < messages.length && tooLong()) {
      total -= sizes[first] + sizes[first + 1] + 2;
      first += 2;
    }
    const sent = (messages.length - first) / 2;
    return { body: { input: [...messages.slice(first), asked] }, omitted: count - sent, sent };
  }

  /** Keep an answered exchange (a blank answer cannot go back: the server refuses empty messages). */
  remember(question, answer, responseId) {
    if (answer.trim()) this.exchanges.push({ question, answer, before: this.responseId });
    if (responseId) this.responseId = responseId;
  }

  /** The body that answers a response's approval requests: through the conversation, or naming the response. */
  approvals(responseId, approvals) {
    if (this.conversationId !== null) return { conversation_id: this.conversationId, approvals };
    return { previous_response_id: responseId, approvals };
  }

  /** The body that asks a kept conversation's last question again, in place of its last answer `responseId` (Regenerate). */
  regenerate(responseId) {
    return { conversation_id: this.conversationId, regenerate: responseId };
  }

  /** Forget the last exchange, so that its question can be asked again from the same context (Regenerate). */
  forgetLast() {
    const last = this.exchanges.pop();
    if (last) this.responseId = last.before;
  }

  clear() {
    this.exchanges = [];
    this.responseId = null;
    this.conversationId = null;
  }
}

/** A question's message content: its text (cut to `maxChars`), or its content parts when it has attachments. */
export function contentOf(question, maxChars) {
  if (typeof question === "string") return cutToChars(question, maxChars);
  const text = cutToChars(question.text, maxChars);
  return question.attachments.length ? contentParts(text, question.attachments) : text;
}
