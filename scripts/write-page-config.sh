#!/bin/sh
# azd hooks of the web service: predeploy points the page at the Function App (API_BASE_URL is
# an output of infra/main.bicep); postdeploy passes `/api` to put the committed default back,
# so the page run on this machine keeps calling its own origin.
set -eu
api_base="${1:-${API_BASE_URL:-}}"
[ -n "$api_base" ] || { echo "API_BASE_URL is not set: run azd provision first" >&2; exit 1; }
printf '{"apiBase": "%s"}\n' "$api_base" > "$(dirname "$0")/../static/config.json"
echo "static/config.json -> $api_base"
