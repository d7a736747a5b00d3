// Signing in, when the API wants users' tokens (AUTH_MODE=entra): config.json's `auth`
// ({clientId, authority, scope}) turns it on. MSAL (the authorization code flow with PKCE)
// signs the user in through a redirect and keeps the tokens in sessionStorage; each API call
// gets an access token for the API's scope. Without `auth` nothing here loads or runs.
const MSAL_BUNDLE = "vendor/msal-browser/msal-browser.min.js";

const session = { client: null, scopes: [] };

/** Start signing in if `config` ({clientId, authority, scope}) says to; true when it does. Finishes a sign-in redirect. */
export async function startSignIn(config) {
  if (!isSignInConfig(config)) return false;
  const msal = await loadMsal();
  const { host } = new URL(config.authority);
  session.scopes = [config.scope];
  session.client = await msal.createStandardPublicClientApplication({
    auth: {
      clientId: config.clientId,
      authority: config.authority,
      knownAuthorities: [host],
      // Entra ID's own protocol for its hosts; plain OpenID Connect for any other issuer.
      protocolMode: host.endsWith("login.microsoftonline.com") ? "AAD" : "OIDC",
      redirectUri: location.origin + location.pathname,
    },
    cache: { cacheLocation: "sessionStorage" },
  });
  let result = null;
  try {
    result = await session.client.handleRedirectPromise();
  } catch (error) {
    console.warn("sign-in did not finish:", error.errorCode ?? error.name); // the user stays signed out
  }
  const account = result?.account ?? session.client.getAllAccounts()[0] ?? null;
  if (account) session.client.setActiveAccount(account);
  return true;
}

/** True when the page signs users in (config.json has `auth`). */
export function signsIn() {
  return session.client !== null;
}

/** The signed-in user's display name, or null. */
export function userName() {
  const account = session.client?.getActiveAccount();
  return account ? account.name || account.username || "" : null;
}

/** Leave for the sign-in page; the page loads again, signed in. */
export async function signIn() {
  await session.client.loginRedirect({ scopes: session.scopes });
}

export async function signOut() {
  await session.client.logoutRedirect({ account: session.client.getActiveAccount() });
}

/** An access token for the API, or null when there is no signed-in user (or their session needs a new sign-in). */
export async function accessToken() {
  const account = session.client?.getActiveAccount();
  if (!account) return null;
  try {
    const { accessToken: token } = await session.client.acquireTokenSilent({ scopes: session.scopes, account });
    return token;
  } catch (error) {
    if (error instanceof globalThis.msal.InteractionRequiredAuthError) return null; // the API's 401 asks for a sign-in
    throw error;
  }
}

function isSignInConfig(config) {
  return ["clientId", "authority", "scope"].every((name) => typeof config?.[name] === "string" && config[name]);
}

/** MSAL's pinned browser bundle (it defines `msal`), loaded once and only when the page signs in. */
function loadMsal() {
  if (globalThis.msal) return Promise.resolve(globalThis.msal);
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = MSAL_BUNDLE;
    script.onload = () => resolve(globalThis.msal);
    script.onerror = () => reject(new Error(`${MSAL_BUNDLE} did not load`));
    document.head.append(script);
  });
}
