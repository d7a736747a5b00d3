// The header's account button when the page signs users in: "Sign in", or "Sign out (name)".
import { signIn, signOut, userName } from "./auth.js";
import { localize } from "./i18n.js";

export function showAccount(button) {
  const name = userName();
  localize(button, name === null ? "signIn" : "signOut", { name });
  button.hidden = false;
  button.addEventListener("click", () => (userName() === null ? signIn() : signOut()));
}
