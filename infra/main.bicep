// Everything `azd up` creates: the Function App (Flex Consumption) that relays the
// stream, the Static Web App with the page, Azure OpenAI (new, or an existing one),
// monitoring, and the role assignments for keyless auth. No key anywhere.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names and tags every resource.')
param environmentName string

@minLength(1)
@description('Region for the resources (one where Flex Consumption runs).')
param location string

@description('Object id of the user running azd: gets "Cognitive Services OpenAI User" for local keyless runs.')
param principalId string = ''

@description('Principal type of principalId.')
@allowed(['User', 'ServicePrincipal'])
param principalType string = 'User'

@description('Name of an existing Azure OpenAI account to use; empty creates a new one.')
param existingOpenAiAccountName string = ''

@description('Resource group of the existing Azure OpenAI account (default: the new resource group).')
param existingOpenAiResourceGroupName string = ''

@description('Region for a new Azure OpenAI account (the model must be offered there).')
param openAiLocation string = location

@description('Model deployment name the app calls (MODEL_DEPLOYMENT_NAME).')
param modelDeploymentName string = 'gpt-4o-mini'

@description('Model and version for a new deployment.')
param modelName string = 'gpt-4o-mini'
param modelVersion string = '2024-07-18'

@description('Capacity of a new deployment, in thousands of tokens per minute.')
param modelCapacity int = 30

@description('REASONING_EFFORT: reasoning effort for reasoning models (o-series, gpt-5 family); empty: not sent.')
@allowed(['', 'none', 'minimal', 'low', 'medium', 'high', 'xhigh', 'max'])
param reasoningEffort string = ''

@description('REASONING_SUMMARY: stream a summary of the reasoning (auto when an effort is set; none turns it off).')
@allowed(['', 'auto', 'concise', 'detailed', 'none'])
param reasoningSummary string = ''

@description('WEB_SEARCH: let the model search the web (the web_search tool), citing what it found.')
param webSearch bool = false

@description('RESUMABLE_STREAMS: background mode, so streams resume after a cut and Stop always stops; responses are stored upstream (30 days on Azure OpenAI).')
param resumableStreams bool = false

@description('AUTH_MODE: key (a function key for chat, resume and cancel) or entra (users sign in on the page; the app checks their Microsoft Entra ID tokens).')
@allowed(['key', 'entra'])
param authMode string = 'key'

@description('AUTH_CLIENT_ID: application (client) id of the app registration for the API and the page; required with authMode entra (README: How callers authenticate).')
param authClientId string = ''

@description('AUTH_TENANT_ID: the directory (tenant) of that app registration.')
param authTenantId string = tenant().tenantId

@description('USER_DAILY_TOKENS: tokens each user may use per UTC day, counted in the storage account; 0: no budget.')
@minValue(0)
param userDailyTokens int = 0

@secure()
@description('OWNER_HASH_SECRET: the key of the owner hash in each response\'s metadata and the budget table; azd generates it once per environment and keeps it there.')
@metadata({ azd: { type: 'generate', config: { length: 48, noSpecial: true } } })
param ownerHashSecret string

@description('Highest number of Function App instances.')
param maximumInstanceCount int = 40

@description('Python version of the Function App (3.13 runs on azure-functions-runtime behind the host\'s proxy worker; 3.11 and 3.12 on the Python worker 4.x).')
@allowed(['3.11', '3.12', '3.13'])
param pythonVersion string = '3.13'

@description('Memory of each instance, in MB; CPU and network bandwidth come in proportion. Billed per GB-second while it runs functions.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Streams one instance serves at once before Flex Consumption adds another; a stream mostly waits for the model.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

@description('Instances kept running for HTTP even at idle (no cold start for the first caller); billed around the clock, without the free grant.')
@minValue(0)
param alwaysReadyInstances int = 0

@description('E-mail address for the two alert rules (stream error rate, time to first delta); empty: no action group, the alerts show in the portal only.')
param alertEmail string = ''

@description('Alert when the p95 time to first delta over 15 minutes is above this, in milliseconds.')
@minValue(100)
param firstDeltaAlertMilliseconds int = 10000

@description('OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: record questions, answers and tool arguments on the model calls\' spans (off: no text is ever recorded).')
param captureMessageContent bool = false

var token = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var useExistingOpenAi = !empty(existingOpenAiAccountName)
var openAiAccountName = useExistingOpenAi ? existingOpenAiAccountName : 'oai-${token}'
var resourceGroupName = 'rg-${environmentName}'
var openAiResourceGroupName = useExistingOpenAi && !empty(existingOpenAiResourceGroupName) ? existingOpenAiResourceGroupName : resourceGroupName

resource resourceGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
  tags: tags
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: resourceGroup
  params: {
    location: location
    tags: tags
    token: token
    alertEmail: alertEmail
    firstDeltaAlertMilliseconds: firstDeltaAlertMilliseconds
  }
}

module web 'app/web.bicep' = {
  name: 'web'
  scope: resourceGroup
  params: {
    location: location
    tags: tags
    token: token
  }
}

module api 'app/function.bicep' = {
  name: 'api'
  scope: resourceGroup
  params: {
    location: location
    tags: tags
    token: token
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    openAiEndpoint: openAi.outputs.endpoint
    modelDeploymentName: modelDeploymentName
    reasoningEffort: reasoningEffort
    reasoningSummary: reasoningSummary
    webSearch: webSearch
    resumableStreams: resumableStreams
    authMode: authMode
    authClientId: authClientId
    authTenantId: authTenantId
    userDailyTokens: userDailyTokens
    ownerHashSecret: ownerHashSecret
    captureMessageContent: captureMessageContent
    allowedOrigins: ['https://${web.outputs.defaultHostname}']
    maximumInstanceCount: maximumInstanceCount
    pythonVersion: pythonVersion
    instanceMemoryMB: instanceMemoryMB
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    alwaysReadyInstances: alwaysReadyInstances
  }
}

module openAiAccount 'app/openai-account.bicep' = if (!useExistingOpenAi) {
  name: 'openai-account'
  scope: resourceGroup
  params: {
    name: openAiAccountName
    location: openAiLocation
    tags: tags
    modelDeploymentName: modelDeploymentName
    modelName: modelName
    modelVersion: modelVersion
    modelCapacity: modelCapacity
  }
}

module openAi 'app/openai-endpoint.bicep' = {
  name: 'openai-endpoint'
  scope: az.resourceGroup(openAiResourceGroupName)
  dependsOn: [resourceGroup, openAiAccount]
  params: {
    accountName: openAiAccountName
  }
}

module openAiAccess 'app/openai-access.bicep' = {
  name: 'openai-access'
  scope: az.resourceGroup(openAiResourceGroupName)
  dependsOn: [resourceGroup, openAiAccount]
  params: {
    accountName: openAiAccountName
    appPrincipalId: api.outputs.identityPrincipalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = resourceGroup.name
output OPENAI_ENDPOINT string = openAi.outputs.endpoint
output MODEL_DEPLOYMENT_NAME string = modelDeploymentName
output API_BASE_URL string = 'https://${api.outputs.defaultHostname}/api'
output FUNCTION_APP_NAME string = api.outputs.name
output WEB_URL string = 'https://${web.outputs.defaultHostname}'
// What the page's config.json carries for signing in (scripts/write-page-config.sh): nothing secret.
output AUTH_MODE string = authMode
output AUTH_CLIENT_ID string = authClientId
output AUTH_TENANT_ID string = authTenantId
