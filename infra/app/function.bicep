// The Function App on the Flex Consumption plan (Python 3.13 by default), with a
// user-assigned managed identity. Its storage is reached through that identity (shared keys are
// off), and its app settings are exactly the names the code reads.
param location string
param tags object
param token string
param applicationInsightsName string
param openAiEndpoint string
param modelDeploymentName string
param reasoningEffort string
param reasoningSummary string
param webSearch bool
param resumableStreams bool
param authMode string
param authClientId string
param authTenantId string
param userDailyTokens int
param captureMessageContent bool
@secure()
param ownerHashSecret string
param allowedOrigins array
param maximumInstanceCount int
param pythonVersion string
param instanceMemoryMB int
param httpPerInstanceConcurrency int
param alwaysReadyInstances int

var deploymentContainer = 'app-package'
// Python 3.12 and older index the app at start-up, which HTTP streaming needs, only with this
// setting; 3.13's worker (azure-functions-runtime) always does.
var initIndexing = contains(['3.11', '3.12'], pythonVersion) ? { PYTHON_ENABLE_INIT_INDEXING: '1' } : {}
var budgetTable = 'relaybudgets' // responses_relay/budget.py's TABLE
// Reasoning models reject sampling parameters: with an effort set, the app sends none.
var sampling = empty(reasoningEffort) || reasoningEffort == 'none'
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${token}'
  location: location
  tags: tags
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption reaches its deployment storage over the public endpoint without VNet integration; shared keys are off, so only Entra ID identities with a role get in
  // checkov:skip=CKV_AZURE_206: holds only the deployment package and host state, both recreated by `azd deploy`; LRS keeps idle cost down
  // checkov:skip=CKV_AZURE_43: 'st' + uniqueString() is 15 lowercase letters and digits, valid; checkov cannot evaluate the expression
  name: 'st${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
  }

  resource blobs 'blobServices' = {
    name: 'default'
    properties: {
      deleteRetentionPolicy: { enabled: true, days: 7 }
    }

    resource packages 'containers' = {
      name: deploymentContainer
    }
  }

  // USER_DAILY_TOKENS' counts, reached with the identity's Storage Table Data Contributor role.
  resource tables 'tableServices' = {
    name: 'default'

    resource budgets 'tables' = {
      name: budgetTable
    }
  }
}

resource storageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in [roles.storageBlobDataOwner, roles.storageQueueDataContributor, roles.storageTableDataContributor]: {
    name: guid(storage.id, identity.id, role)
    scope: storage
    properties: {
      principalId: identity.properties.principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    }
  }
]

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource telemetryAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy on Flex Consumption needs always-ready instances, which cost money at idle; enable it for production
  name: 'plan-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: a public streaming API by design; chat needs a function key, or with authMode entra a user's Entra ID token that the app checks itself (README)
  // checkov:skip=CKV_AZURE_17: callers are browsers, which do not present client certificates
  // checkov:skip=CKV_AZURE_212: serverless: scales to zero at idle on purpose
  // checkov:skip=CKV_AZURE_213: Flex Consumption has no App Service health check; GET /api/health serves external probes
  name: 'func-${token}'
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      cors: { allowedOrigins: allowedOrigins, supportCredentials: false }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        triggers: { http: { perInstanceConcurrency: httpPerInstanceConcurrency } }
        alwaysReady: [{ name: 'http', instanceCount: alwaysReadyInstances }]
      }
      runtime: { name: 'python', version: pythonVersion }
    }
  }

  resource settings 'config' = {
    // checkov:skip=CKV_AZURE_66: these are app settings, not site logging config; the Functions host logs to Application Insights
    // checkov:skip=CKV_AZURE_63: as above: logging goes to Application Insights
    // checkov:skip=CKV_AZURE_65: as above; detailed errors would also leak internals to callers
    // checkov:skip=CKV_AZURE_222: app settings carry no network setting; see the site
    // checkov:skip=CKV_AZURE_80: a Python app: no .NET Framework
    // checkov:skip=CKV_AZURE_13: chat is FUNCTION-level (keys), or with AUTH_MODE=entra the app validates users' Entra ID tokens itself (it needs each user's identity for owners and budgets)
    // checkov:skip=CKV_AZURE_88: Flex Consumption has no Azure Files content share
    name: 'appsettings'
    properties: union(initIndexing, {
      // The Functions host: storage and telemetry through the identity, no keys.
      AzureWebJobsStorage__accountName: storage.name
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identity.properties.clientId
      APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
      OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: captureMessageContent ? 'true' : 'false'
      // The relay (responses_relay/settings.py). No API key: keyless through AZURE_CLIENT_ID.
      OPENAI_ENDPOINT: openAiEndpoint
      AZURE_CLIENT_ID: identity.properties.clientId
      MODEL_DEPLOYMENT_NAME: modelDeploymentName
      MODEL_INSTRUCTIONS: ''
      MAX_OUTPUT_TOKENS: '1000'
      TEMPERATURE: sampling ? '0.8' : 'none'
      TOP_P: sampling ? '0.95' : 'none'
      REASONING_EFFORT: reasoningEffort
      REASONING_SUMMARY: reasoningSummary
      WEB_SEARCH: webSearch ? 'true' : 'false'
      RESUMABLE_STREAMS: resumableStreams ? 'true' : 'false'
      // Who may use it: entra makes chat, resume and cancel anonymous to the host, and the app checks users' tokens.
      AUTH_MODE: authMode
      AUTH_CLIENT_ID: authClientId
      AUTH_TENANT_ID: authTenantId
      AUTH_ISSUER: ''
      AUTH_JWKS_URL: ''
      AUTH_SCOPE: 'chat' // the scope the README's registration creates and the page's config.json asks for
      AUTH_APP_ROLE: ''
      OWNER_HASH_SECRET: ownerHashSecret
      USER_DAILY_TOKENS: userDailyTokens > 0 ? string(userDailyTokens) : ''
      // Each user's conversations: the messages in the Conversations API, their index in this storage account.
      CONVERSATIONS: 'auto'
      CONVERSATION_RETENTION_DAYS: '30'
      HEARTBEAT_SECONDS: '5'
      STREAM_TIME_LIMIT_SECONDS: '220'
      SPILLOVER_DEPLOYMENT: ''
      MAX_BODY_BYTES: '' // empty: 256 KiB, grown to fit a message's attachments (README, Settings)
      MAX_MESSAGES: '64'
      MAX_MESSAGE_CHARS: '32000'
      ATTACHMENTS: 'on'
      MAX_ATTACHMENTS: '4'
      MAX_ATTACHMENT_BYTES: '10485760'
      MAX_IMAGE_PIXELS: '33177600'
      FEEDBACK_COMMENTS: 'drop'
      UPSTREAM_CONNECT_TIMEOUT_SECONDS: '10'
      UPSTREAM_READ_TIMEOUT_SECONDS: '120'
      UPSTREAM_MAX_RETRIES: '1'
      UPSTREAM_HEAL_ATTEMPTS: '3'
      UPSTREAM_HEAL_SECONDS: '30'
      STREAM_BUFFER_BYTES: '262144'
      UPSTREAM_KEEPALIVE_SECONDS: '60'
      UPSTREAM_TRANSPORT: 'aiohttp'
      TOOLS: 'local_time'
      MAX_TOOL_ROUNDS: '5'
      TOOL_TIMEOUT_SECONDS: '10'
      TOOL_THREADS: '4'
      MCP_SERVERS: ''
    })
    dependsOn: [storageAccess, telemetryAccess]
  }
}

output name string = functionApp.name
output defaultHostname string = functionApp.properties.defaultHostName
output identityPrincipalId string = identity.properties.principalId
