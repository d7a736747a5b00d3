#!/bin/sh
# azd predeploy hook of the web service (run from static/): point the page at the
# Function App. API_BASE_URL is an output of infra/main.bicep.
set -eu
: "${API_BASE_URL:?run azd provision first}"
printf '{"apiBase": "%s"}\n' "$API_BASE_URL" > config.json
echo "static/config.json -> $API_BASE_URL"
