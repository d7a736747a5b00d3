# azd hooks of the web service: predeploy points the page at the Function App (API_BASE_URL is
# an output of infra/main.bicep); postdeploy passes `/api` to put the committed default back,
# so the page run on this machine keeps calling its own origin.
param([string]$ApiBase = $env:API_BASE_URL)
if (-not $ApiBase) { throw "API_BASE_URL is not set: run azd provision first" }
$config = Join-Path $PSScriptRoot ".." "static" "config.json"
Set-Content -Path $config -Value ('{"apiBase": "' + $ApiBase + '"}')
Write-Host "static/config.json -> $ApiBase"
