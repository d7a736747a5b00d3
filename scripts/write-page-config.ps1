# azd predeploy hook of the web service (run from static/): point the page at the
# Function App. API_BASE_URL is an output of infra/main.bicep.
if (-not $env:API_BASE_URL) { throw "API_BASE_URL is not set: run azd provision first" }
Set-Content -Path config.json -Value ('{"apiBase": "' + $env:API_BASE_URL + '"}')
Write-Host "static/config.json -> $env:API_BASE_URL"
