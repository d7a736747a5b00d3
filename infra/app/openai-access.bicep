// "Cognitive Services OpenAI User" on the Azure OpenAI account, for the Function App's
// identity and, for local keyless runs, for the user who ran azd.
param accountName string
param appPrincipalId string
param userPrincipalId string
param userPrincipalType string

var openAiUser = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd')

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: accountName
}

resource appAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, openAiUser)
  scope: account
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: openAiUser
  }
}

resource userAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(account.id, userPrincipalId, openAiUser)
  scope: account
  properties: {
    principalId: userPrincipalId
    principalType: userPrincipalType
    roleDefinitionId: openAiUser
  }
}
