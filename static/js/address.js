// The conversation shown, in the page's address (`#/c/<id>`): a reload, back and forward, and
// a link opened on another device signed in as the same user all show it.
const CONVERSATION = /^#\/c\/(conv_[A-Za-z0-9_-]{1,200})$/;

/** The conversation id an address's hash names, or null (a new conversation). */
export function conversationIn(hash) {
  return CONVERSATION.exec(hash)?.[1] ?? null;
}

/** The hash that names a conversation (null: a new one). */
export function addressOf(id) {
  return id === null ? "#/" : `#/c/${id}`;
}
