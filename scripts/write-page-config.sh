#!/bin/sh
# azd hooks of the web service: predeploy points the page at the Function App (API_BASE_URL is
# an output of infra/main.bicep) and, with AUTH_MODE=entra, gives it what MSAL needs to sign
# users in (client id, authority, scope: nothing secret); postdeploy passes `/api` to put the
# committed default back, so the page run on this machine keeps calling its own origin.
set -eu
api_base="${1:-${API_BASE_URL:-}}"
[ -n "$api_base" ] || { echo "API_BASE_URL is not set: run azd provision first" >&2; exit 1; }
config="$(dirname "$0")/../static/config.json"
if [ $# -eq 0 ] && [ "${AUTH_MODE:-key}" = entra ]; then
  [ -n "${AUTH_CLIENT_ID:-}" ] && [ -n "${AUTH_TENANT_ID:-}" ] \
    || { echo "AUTH_MODE=entra needs AUTH_CLIENT_ID and AUTH_TENANT_ID: run azd provision first" >&2; exit 1; }
  authority="https://login.microsoftonline.com/$AUTH_TENANT_ID"
  printf '{"apiBase": "%s", "auth": {"clientId": "%s", "authority": "%s", "scope": "api://%s/chat"}}\n' \
    "$api_base" "$AUTH_CLIENT_ID" "$authority" "$AUTH_CLIENT_ID" > "$config"
  echo "static/config.json -> $api_base, signing in with $authority"
else
  printf '{"apiBase": "%s"}\n' "$api_base" > "$config"
  echo "static/config.json -> $api_base"
fi
