// Enter sends, Shift+Enter is a newline, and Enter that confirms an IME conversion never
// sends. Browsers differ: most set isComposing on that keydown; Safari fires
// compositionend *before* the keydown, which then has isComposing false but keyCode 229.
export function watchComposition(element) {
  const state = { composing: false };
  element.addEventListener("compositionstart", () => {
    state.composing = true;
  });
  element.addEventListener("compositionend", () => {
    state.composing = false;
  });
  return state;
}

export function isSendKey(event, composition) {
  if (event.key !== "Enter" || event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return false;
  return !(event.isComposing || event.keyCode === 229 || composition.composing);
}
