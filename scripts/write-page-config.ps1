# azd hooks of the web service: predeploy points the page at the Function App (API_BASE_URL is
# an output of infra/main.bicep) and, with AUTH_MODE=entra, gives it what MSAL needs to sign
# users in (client id, authority, scope: nothing secret); postdeploy passes `/api` to put the
# committed default back, so the page run on this machine keeps calling its own origin.
param([string]$ApiBase)
$reset = [bool]$ApiBase
if (-not $ApiBase) { $ApiBase = $env:API_BASE_URL }
if (-not $ApiBase) { throw "API_BASE_URL is not set: run azd provision first" }
$config = Join-Path $PSScriptRoot ".." "static" "config.json"
$page = [ordered]@{ apiBase = $ApiBase }
if (-not $reset -and $env:AUTH_MODE -eq "entra") {
  if (-not $env:AUTH_CLIENT_ID -or -not $env:AUTH_TENANT_ID) {
    throw "AUTH_MODE=entra needs AUTH_CLIENT_ID and AUTH_TENANT_ID: run azd provision first"
  }
  $page.auth = [ordered]@{
    clientId = $env:AUTH_CLIENT_ID
    authority = "https://login.microsoftonline.com/$($env:AUTH_TENANT_ID)"
    scope = "api://$($env:AUTH_CLIENT_ID)/chat"
  }
}
Set-Content -Path $config -Value ($page | ConvertTo-Json -Compress)
Write-Host "static/config.json -> $ApiBase"
