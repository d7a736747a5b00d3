// The v1 endpoint of an Azure OpenAI account, new or existing (OPENAI_ENDPOINT).
param accountName string

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: accountName
}

output endpoint string = '${account.properties.endpoint}openai/v1/'
