// A new Azure OpenAI account with the model deployment. Keys are disabled: callers
// (the Function App, the deploying user) authenticate with Microsoft Entra ID.
param name string
param location string
param tags object
param modelDeploymentName string
param modelName string
param modelVersion string
param modelCapacity int

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  // checkov:skip=CKV_AZURE_134: the Flex Consumption app reaches it over the public endpoint, with Entra ID only (no keys); add a private endpoint and VNet integration for a private setup
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: { name: 'S0' }
  identity: { type: 'SystemAssigned' }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource deployment 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: modelDeploymentName
  sku: { name: 'GlobalStandard', capacity: modelCapacity }
  properties: {
    model: { format: 'OpenAI', name: modelName, version: modelVersion }
  }
}
