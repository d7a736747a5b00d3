// Log Analytics and Application Insights. Local (key) ingestion is off: the app's
// identity sends telemetry with Entra ID (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
// With them, what an operator watches: the relay's workbook and two alert rules, whose
// queries name only what the relay emits (responses_relay/telemetry/names.py; tests/test_infra.py).
param location string
param tags object
param token string

@description('Where the alerts are e-mailed (an action group); empty: they fire in the portal only.')
param alertEmail string

@description('The time to first delta whose p95 over 15 minutes raises an alert, in milliseconds.')
param firstDeltaAlertMilliseconds int

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${token}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(applicationInsights.id, 'responses-relay-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Responses relay'
    category: 'workbook'
    sourceId: applicationInsights.id
    serializedData: loadTextContent('relay-workbook.json')
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-${token}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'relay'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var alertActions = {
  actionGroups: empty(alertEmail) ? [] : [actionGroup.id]
}

// Streams that ended with an error (relay.stream.outcomes carries error.type then) against all streams.
resource streamErrorsAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-stream-errors-${token}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Responses relay: stream error rate above 5% in 15 minutes'
    description: 'More than 5% of the streams that ended in the last 15 minutes ended with an error event.'
    severity: 2
    enabled: true
    scopes: [applicationInsights.id]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: '''
customMetrics
| where name == "relay.stream.outcomes"
| extend failed = isnotempty(tostring(customDimensions["error.type"]))
| summarize streams = sum(valueSum), failures = sumif(valueSum, failed)
| where streams > 0
| project error_percent = 100.0 * failures / streams
'''
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'error_percent'
          operator: 'GreaterThan'
          threshold: 5
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: alertActions
  }
}

// The p95 of the per-request figure: a histogram reaches Application Insights as sums and counts only.
resource firstDeltaAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-first-delta-${token}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Responses relay: time to first delta p95 above ${firstDeltaAlertMilliseconds} ms'
    description: 'Over the last 15 minutes, the slowest 5% of streams waited longer than this for their first delta.'
    severity: 3
    enabled: true
    scopes: [applicationInsights.id]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: '''
requests
| extend first_delta = todouble(customDimensions["relay.stream.time_to_first_delta"])
| where isnotnull(first_delta)
| summarize p95_ms = 1000 * percentile(first_delta, 95)
'''
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'p95_ms'
          operator: 'GreaterThan'
          threshold: firstDeltaAlertMilliseconds
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: alertActions
  }
}

output applicationInsightsName string = applicationInsights.name
output workbookName string = workbook.name
