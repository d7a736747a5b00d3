// The Static Web App that serves static/ (the page). It calls the Function App
// directly: Static Web Apps' managed or linked API backends buffer streamed responses.
param location string
param tags object
param token string

resource staticWebApp 'Microsoft.Web/staticSites@2024-04-01' = {
  name: 'swa-${token}'
  location: location
  tags: union(tags, { 'azd-service-name': 'web' })
  sku: { name: 'Free', tier: 'Free' }
  properties: {
    allowConfigFileUpdates: true
  }
}

output defaultHostname string = staticWebApp.properties.defaultHostname
