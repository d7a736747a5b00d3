"""The azd template, checked statically and tied to the code: nothing here can reach Azure."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pycep import BicepParser

from responses_relay.settings import REASONING_EFFORTS, REASONING_SUMMARIES, load_settings
from responses_relay.telemetry import names

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
CHECKOV = ROOT / ".venv-infra" / "bin" / "checkov"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# Settings the code reads that the Function App must not get, and why.
CODE_ONLY = {
    "OPENAI_API_KEY": "keyless in Azure: the app authenticates with its managed identity",
    "DEMO_DELTA_SECONDS": "demo mode only; Azure always has OPENAI_ENDPOINT",
}
# The local host's own settings (scripts/run): neither Azure nor `func start` reads them.
LOCAL_HOST_ONLY = {
    "LOCAL_FUNCTION_KEY": "Azure's Functions host and Core Tools enforce their own keys",
    "CORS_ALLOWED_ORIGINS": "CORS is the Function App's own setting (web.bicep), and Host.CORS under func start",
    "LOCAL_HOST_DIAGNOSTICS": "soak runs",
    "SHUTDOWN_GRACE_SECONDS": "the Functions host decides how instances stop",
}
# Settings the code reads that the template and the example leave unset on purpose, and why.
UNSET_BY_DEFAULT = {
    "OTEL_TRACES_SAMPLER": "unset keeps every trace whole; an operator who wants fewer traces chooses a sampler",
}
# App settings for the Functions host itself, not read by the relay's code.
HOST_ONLY = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "PYTHON_ENABLE_INIT_INDEXING",
}


def parse(path: Path) -> dict[str, Any]:
    return dict(BicepParser().parse(text=path.read_text()))


def code_settings() -> set[str]:
    source = (ROOT / "responses_relay" / "settings.py").read_text()
    return set(re.findall(r'env\.\w+\(\s*"([A-Z][A-Z0-9_]+)"', source))


def bicep_app_settings(python_version: str = "3.13") -> dict[str, Any]:
    """The Function App's app settings for a Python version: `union(initIndexing, {...})`."""
    function = parse(INFRA / "app" / "function.bicep")
    union = function["resources"]["functionApp__settings"]["config"]["properties"]["function"]
    assert (union["type"], union["parameters"]["arg_1"]) == ("union", "initIndexing")
    chosen = function["variables"]["initIndexing"]["value"]["operator"]["operands"]
    contains = chosen["condition"]["function"]["parameters"]
    assert contains["item_to_find"] == "pythonVersion"
    needed = python_version in contains["container"]
    return {**(chosen["true_value"] if needed else chosen["false_value"]), **union["parameters"]["arg_2"]}


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: str(path.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    assert parse(path)["resources"] or parse(path).get("modules") or parse(path)["outputs"]


def test_checkov_finds_nothing_that_is_not_skipped_with_a_reason() -> None:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: scripts/test installs requirements-infra.txt into .venv-infra")
    result = subprocess.run(
        [str(CHECKOV), "-d", str(INFRA), "--framework", "bicep", "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(result.stdout)
    results = report["results"]
    failed = [(check["check_id"], check["resource"]) for check in results["failed_checks"]]
    assert failed == [], result.stdout[-3000:]
    assert report["summary"]["parsing_errors"] == 0
    assert results["passed_checks"]
    for skipped in results["skipped_checks"]:
        reason = skipped.get("check_result", {}).get("suppress_comment", "")
        assert len(reason) > 20, f"{skipped['check_id']} on {skipped['resource']} is skipped without a reason"


def test_app_settings_in_bicep_are_the_settings_the_code_reads() -> None:
    code, bicep = code_settings(), set(bicep_app_settings("3.11"))
    assert "OPENAI_ENDPOINT" in code  # the regex still finds the settings
    assert bicep - HOST_ONLY == code - set(CODE_ONLY) - set(LOCAL_HOST_ONLY) - set(UNSET_BY_DEFAULT)
    assert bicep >= HOST_ONLY
    assert not [name for name in bicep if "KEY" in name.upper()]


def test_local_settings_example_lists_every_setting() -> None:
    example = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
    host = {"FUNCTIONS_WORKER_RUNTIME", "PYTHON_ENABLE_INIT_INDEXING", "AzureWebJobsStorage"}
    assert set(example) - host == code_settings() - set(LOCAL_HOST_ONLY) - set(UNSET_BY_DEFAULT)


def test_no_key_or_secret_in_infra() -> None:
    for path in [*BICEP_FILES, INFRA / "main.parameters.json"]:
        text = path.read_text()
        assert "listKeys" not in text, path
        assert "AccountKey=" not in text, path
        assert "OPENAI_API_KEY" not in text, path


def test_azure_yaml_names_services_and_paths_that_exist() -> None:
    config = yaml.safe_load((ROOT / "azure.yaml").read_text())
    services = config["services"]
    assert set(services) == {"api", "web"}
    api, web = services["api"], services["web"]
    assert (api["host"], api["language"]) == ("function", "python")
    for name in ("function_app.py", "host.json", "requirements.txt"):
        assert (ROOT / api["project"] / name).exists()
    assert web["host"] == "staticwebapp"
    assert (ROOT / web["project"] / web["dist"] / "index.html").exists()
    assert (ROOT / web["project"] / "staticwebapp.config.json").exists()
    for stage in ("predeploy", "postdeploy"):
        for hook in web["hooks"][stage].values():
            script = next(word for word in hook["run"].split() if word.startswith("../"))
            assert (ROOT / web["project"] / script).resolve().exists()
    tagged = re.findall(r"'azd-service-name': '(\w+)'", "".join(path.read_text() for path in BICEP_FILES))
    assert sorted(tagged) == sorted(services)


def test_page_config_defaults_to_this_origin_and_deploy_hooks_rewrite_it(tmp_path: Path) -> None:
    assert json.loads((ROOT / "static" / "config.json").read_text()) == {"apiBase": "/api"}
    # The hooks as azd runs them, from static/, on a copy of the two folders they touch.
    (tmp_path / "scripts").mkdir()
    (tmp_path / "static").mkdir()
    shutil.copy2(ROOT / "scripts" / "write-page-config.sh", tmp_path / "scripts")
    config = tmp_path / "static" / "config.json"
    hooks = yaml.safe_load((ROOT / "azure.yaml").read_text())["services"]["web"]["hooks"]
    url = "https://func-abc.azurewebsites.net/api"

    def run(stage: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
        hook = hooks[stage]["posix"]
        command = [hook["shell"], "-c", hook["run"]]
        return subprocess.run(command, cwd=tmp_path / "static", env=environ, capture_output=True, text=True, timeout=10)

    assert run("predeploy", {"PATH": "/usr/bin:/bin", "API_BASE_URL": url}).returncode == 0
    assert json.loads(config.read_text()) == {"apiBase": url}
    assert run("postdeploy", {"PATH": "/usr/bin:/bin", "API_BASE_URL": url}).returncode == 0
    assert json.loads(config.read_text()) == {"apiBase": "/api"}
    unprovisioned = run("predeploy", {"PATH": "/usr/bin:/bin"})
    assert unprovisioned.returncode != 0
    assert "API_BASE_URL is not set" in unprovisioned.stderr
    assert json.loads(config.read_text()) == {"apiBase": "/api"}


def test_outputs_the_hooks_and_readme_rely_on() -> None:
    outputs = set(parse(INFRA / "main.bicep")["outputs"])
    assert {"API_BASE_URL", "WEB_URL", "OPENAI_ENDPOINT", "FUNCTION_APP_NAME"} <= outputs
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = set(parse(INFRA / "main.bicep")["parameters"])
    assert set(parameters) <= declared


def test_flex_consumption_python_with_identity_based_storage() -> None:
    resources = parse(INFRA / "app" / "function.bicep")["resources"]
    plan = resources["plan"]["config"]
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    site = resources["functionApp"]["config"]
    assert site["identity"]["type"] == "UserAssigned"
    assert site["properties"]["functionAppConfig"]["runtime"] == {"name": "python", "version": "pythonVersion"}
    storage = resources["storage"]["config"]["properties"]
    assert storage["allowSharedKeyAccess"] is False
    assert bicep_app_settings()["AzureWebJobsStorage__credential"] == "managedidentity"


def test_python_313_by_default_and_init_indexing_only_where_the_version_needs_it() -> None:
    declared = parse(INFRA / "main.bicep")["parameters"]["pythonVersion"]
    assert declared["default"] == "3.13"
    assert decorator(declared, "allowed") == ["3.11", "3.12", "3.13"]
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert azd["pythonVersion"]["value"] == "${PYTHON_VERSION=3.13}"
    # 3.12 and older index at start-up (which HTTP streaming needs) only when told to; 3.13 always does.
    assert bicep_app_settings("3.11")["PYTHON_ENABLE_INIT_INDEXING"] == "1"
    assert bicep_app_settings("3.12")["PYTHON_ENABLE_INIT_INDEXING"] == "1"
    assert "PYTHON_ENABLE_INIT_INDEXING" not in bicep_app_settings("3.13")


def test_instance_memory_concurrency_and_always_ready_instances_are_parameters() -> None:
    declared = parse(INFRA / "main.bicep")["parameters"]
    memory, concurrency, ready = (
        declared[name] for name in ("instanceMemoryMB", "httpPerInstanceConcurrency", "alwaysReadyInstances")
    )
    assert (memory["default"], decorator(memory, "allowed")) == (2048, [512, 2048, 4096])
    assert (concurrency["default"], decorator(concurrency, "min_value"), decorator(concurrency, "max_value")) == (
        16,
        1,
        1000,
    )
    assert (ready["default"], decorator(ready, "min_value")) == (0, 0)  # nothing billed at idle by default
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert {
        name: azd[name]["value"] for name in ("instanceMemoryMB", "httpPerInstanceConcurrency", "alwaysReadyInstances")
    } == {
        "instanceMemoryMB": "${INSTANCE_MEMORY_MB=2048}",
        "httpPerInstanceConcurrency": "${HTTP_PER_INSTANCE_CONCURRENCY=16}",
        "alwaysReadyInstances": "${ALWAYS_READY_INSTANCES=0}",
    }
    passed = parse(INFRA / "main.bicep")["modules"]["api"]["config"]["params"]
    for name in ("pythonVersion", "instanceMemoryMB", "httpPerInstanceConcurrency", "alwaysReadyInstances"):
        assert passed[name] == name
    site = parse(INFRA / "app" / "function.bicep")["resources"]["functionApp"]["config"]
    assert site["properties"]["functionAppConfig"]["scaleAndConcurrency"] == {
        "maximumInstanceCount": "maximumInstanceCount",
        "instanceMemoryMB": "instanceMemoryMB",
        "triggers": {"http": {"perInstanceConcurrency": "httpPerInstanceConcurrency"}},
        "alwaysReady": [{"name": "http", "instanceCount": "alwaysReadyInstances"}],
    }


def decorator(parameter: dict[str, Any], kind: str) -> Any:
    [argument] = [item["argument"] for item in parameter["decorators"] if item["type"] == kind]
    return argument


def test_reasoning_and_web_search_are_azd_parameters_passed_to_the_app() -> None:
    main = parse(INFRA / "main.bicep")
    declared = main["parameters"]

    assert decorator(declared["reasoningEffort"], "allowed") == ["", *REASONING_EFFORTS]
    assert decorator(declared["reasoningSummary"], "allowed") == ["", *REASONING_SUMMARIES, "none"]
    assert (declared["webSearch"]["type"], declared["webSearch"]["default"]) == ("bool", False)
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert azd["reasoningEffort"]["value"] == "${REASONING_EFFORT=}"
    assert azd["reasoningSummary"]["value"] == "${REASONING_SUMMARY=}"
    assert azd["webSearch"]["value"] == "${WEB_SEARCH=false}"
    passed = main["modules"]["api"]["config"]["params"]
    assert {name: passed[name] for name in ("reasoningEffort", "reasoningSummary", "webSearch")} == {
        "reasoningEffort": "reasoningEffort",
        "reasoningSummary": "reasoningSummary",
        "webSearch": "webSearch",
    }
    function = parse(INFRA / "app" / "function.bicep")
    assert {"reasoningEffort", "reasoningSummary", "webSearch"} <= set(function["parameters"])
    settings = bicep_app_settings()
    assert (settings["REASONING_EFFORT"], settings["REASONING_SUMMARY"]) == ("reasoningEffort", "reasoningSummary")
    web_search = settings["WEB_SEARCH"]["operator"]
    assert web_search["operands"] == {"condition": "webSearch", "true_value": "true", "false_value": "false"}
    for name, value in (("TEMPERATURE", "0.8"), ("TOP_P", "0.95")):  # reasoning models reject them
        assert settings[name]["operator"]["operands"] == {
            "condition": "sampling",
            "true_value": value,
            "false_value": "none",
        }
    # What the template sets by default is what the app reads as "off".
    app = load_settings({"REASONING_EFFORT": "", "REASONING_SUMMARY": "", "WEB_SEARCH": "false"})
    assert (app.reasoning_effort, app.reasoning_summary, app.web_search) == (None, None, False)


def test_with_entra_the_deploy_hook_gives_the_page_what_msal_needs_and_nothing_secret(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "static").mkdir()
    shutil.copy2(ROOT / "scripts" / "write-page-config.sh", tmp_path / "scripts")
    config = tmp_path / "static" / "config.json"
    hooks = yaml.safe_load((ROOT / "azure.yaml").read_text())["services"]["web"]["hooks"]
    tenant, client = "0b9d7a55-1c2e-4f3a-8b6c-5d4e3f2a1b0c", "6f1c2f4e-3b1a-4c55-9d1e-2a7b8c9d0e1f"
    environ = {"PATH": "/usr/bin:/bin", "API_BASE_URL": "https://func-abc.azurewebsites.net/api", "AUTH_MODE": "entra"}

    def run(stage: str, **extra: str) -> subprocess.CompletedProcess[str]:
        command = [hooks[stage]["posix"]["shell"], "-c", hooks[stage]["posix"]["run"]]
        env = {**environ, **extra}
        return subprocess.run(command, cwd=tmp_path / "static", env=env, capture_output=True, text=True, timeout=10)

    assert run("predeploy", AUTH_CLIENT_ID=client, AUTH_TENANT_ID=tenant, OWNER_HASH_SECRET="s" * 48).returncode == 0
    assert json.loads(config.read_text()) == {
        "apiBase": "https://func-abc.azurewebsites.net/api",
        "auth": {
            "clientId": client,
            "authority": f"https://login.microsoftonline.com/{tenant}",
            "scope": f"api://{client}/chat",
        },
    }
    assert run("postdeploy", AUTH_CLIENT_ID=client, AUTH_TENANT_ID=tenant).returncode == 0
    assert json.loads(config.read_text()) == {"apiBase": "/api"}
    unregistered = run("predeploy")
    assert unregistered.returncode != 0
    assert "AUTH_MODE=entra needs AUTH_CLIENT_ID and AUTH_TENANT_ID" in unregistered.stderr


def test_who_may_use_it_is_azd_parameters_passed_to_the_app() -> None:
    main = parse(INFRA / "main.bicep")
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert azd["authMode"]["value"] == "${AUTH_MODE=key}"
    assert azd["authClientId"]["value"] == "${AUTH_CLIENT_ID=}"
    assert azd["userDailyTokens"]["value"] == "${USER_DAILY_TOKENS=0}"
    assert "ownerHashSecret" not in azd  # azd generates it once per environment (the parameter's metadata)
    assert main["parameters"]["ownerHashSecret"]["decorators"]
    settings = bicep_app_settings()
    assert (settings["AUTH_MODE"], settings["AUTH_CLIENT_ID"], settings["AUTH_TENANT_ID"]) == (
        "authMode",
        "authClientId",
        "authTenantId",
    )
    assert settings["OWNER_HASH_SECRET"] == "ownerHashSecret"
    # The default settings are what the app takes: key mode, no budget.
    app = load_settings({"AUTH_MODE": "key", "AUTH_ISSUER": "", "AUTH_JWKS_URL": "", "USER_DAILY_TOKENS": ""})
    assert (app.access.mode, app.access.daily_tokens) == ("key", None)


WORKBOOK = INFRA / "app" / "relay-workbook.json"
MONITORING = INFRA / "app" / "monitoring.bicep"
ALERT_RULE = "Microsoft.Insights/scheduledQueryRules"
# What a query names: a metric (customMetrics' name), or a dimension or attribute (customDimensions' key).
METRIC_NAME = re.compile(r'\bname\s*(?:==\s*"([^"]+)"|in\s*\(([^)]*)\))')
DIMENSION = re.compile(r'customDimensions\[\s*"([^"]+)"\s*\]')


def workbook_queries() -> dict[str, str]:
    """The workbook's queries by item name."""
    items = json.loads(WORKBOOK.read_text())["items"]
    return {item["name"]: item["content"]["query"] for item in items if item["type"] == 3}


def alert_queries() -> dict[str, str]:
    """The alert rules' queries by resource name."""
    rules = [(name, rule) for name, rule in parse(MONITORING)["resources"].items() if rule["type"] == ALERT_RULE]
    assert len(rules) == 2
    return {name: rule["config"]["properties"]["criteria"]["allOf"][0]["query"] for name, rule in rules}


def named(query: str) -> tuple[set[str], set[str]]:
    """The metric names and the dimension names `query` reads."""
    metrics = set()
    for single, listed in METRIC_NAME.findall(query):
        metrics |= {single} if single else set(re.findall(r'"([^"]+)"', listed))
    return metrics, set(DIMENSION.findall(query))


def test_the_workbook_is_valid_and_shows_what_an_operator_watches() -> None:
    workbook = json.loads(WORKBOOK.read_text())
    assert workbook["version"] == "Notebook/1.0"
    queries = workbook_queries()
    assert set(queries) >= {
        "first-delta",  # time to first delta p50 and p95
        "tokens",  # tokens per hour
        "outcomes",  # streams by outcome code
        "active",  # active streams
        "heals-hand-offs",
        "budget-refusals",
        "slowest",  # the slowest operations, linked to their traces
    }
    assert "percentile(first_delta, 50)" in queries["first-delta"]
    assert "percentile(first_delta, 95)" in queries["first-delta"]
    assert "bin(timestamp, 1h)" in queries["tokens"]
    [slowest] = [item for item in workbook["items"] if item["name"] == "slowest"]
    [link] = slowest["content"]["gridSettings"]["formatters"]
    assert (link["columnMatch"], link["formatOptions"]["linkTarget"]) == ("itemId", "RequestDetails")
    for item in workbook["items"]:
        if item["type"] == 3:
            assert item["content"]["resourceType"] == "microsoft.insights/components"
            assert item["content"]["timeContextFromParameter"] == "TimeRange"
    resource = parse(MONITORING)["resources"]["workbook"]
    assert resource["type"] == "Microsoft.Insights/workbooks"
    loaded = resource["config"]["properties"]["serializedData"]["function"]
    assert (loaded["type"], loaded["parameters"]["file_path"]) == ("load_text_content", WORKBOOK.name)


@pytest.mark.parametrize("source", ["workbook", "alerts"])
def test_queries_name_only_metrics_and_dimensions_the_relay_emits(source: str) -> None:
    queries = workbook_queries() if source == "workbook" else alert_queries()
    metrics, dimensions = set(), set()
    for query in queries.values():
        read_metrics, read_dimensions = named(query)
        metrics |= read_metrics
        dimensions |= read_dimensions
    assert metrics or dimensions  # the patterns still find what the queries name
    assert metrics <= {metric.name for metric in names.METRICS}
    assert dimensions <= names.dimensions()
    if source == "workbook":  # and it shows every one of the relay's metrics
        shown = " ".join(queries.values())
        assert [metric.name for metric in names.METRICS if metric.name not in shown] == []


def test_two_alert_rules_with_an_action_group_for_the_email_parameter() -> None:
    main = parse(INFRA / "main.bicep")
    declared = main["parameters"]
    assert (declared["alertEmail"]["type"], declared["alertEmail"]["default"]) == ("string", "")
    milliseconds = declared["firstDeltaAlertMilliseconds"]
    assert (milliseconds["default"], decorator(milliseconds, "min_value")) == (10000, 100)
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert azd["alertEmail"]["value"] == "${ALERT_EMAIL=}"
    assert azd["firstDeltaAlertMilliseconds"]["value"] == "${FIRST_DELTA_ALERT_MS=10000}"
    passed = main["modules"]["monitoring"]["config"]["params"]
    for name in ("alertEmail", "firstDeltaAlertMilliseconds"):
        assert passed[name] == name
    monitoring = parse(MONITORING)
    resources = monitoring["resources"]
    # The action group exists when an address is given, and e-mails it.
    group = resources["actionGroup"]["config"]
    assert group["condition"]["operator"]["operands"]["bool_value"]["function"]["parameters"] == {
        "item_to_test": "alertEmail"
    }
    assert group["config"]["properties"]["emailReceivers"][0]["emailAddress"] == "alertEmail"
    actions = monitoring["variables"]["alertActions"]["value"]["actionGroups"]["operator"]["operands"]
    assert actions["true_value"] == []
    assert actions["false_value"][0]["operator"]["operands"] == {"operand_1": "actionGroup", "operand_2": "id"}
    # Stream errors above 5 % in 15 minutes; time to first delta p95 above the parameter.
    errors = resources["streamErrorsAlert"]["config"]["properties"]
    first_delta = resources["firstDeltaAlert"]["config"]["properties"]
    for alert in (errors, first_delta):
        assert (alert["windowSize"], alert["actions"], alert["enabled"]) == ("PT15M", "alertActions", True)
        assert alert["scopes"][0]["operator"]["operands"] == {"operand_1": "applicationInsights", "operand_2": "id"}
    [error_rate] = errors["criteria"]["allOf"]
    assert (error_rate["metricMeasureColumn"], error_rate["operator"], error_rate["threshold"]) == (
        "error_percent",
        "GreaterThan",
        5,
    )
    [slow] = first_delta["criteria"]["allOf"]
    assert (slow["metricMeasureColumn"], slow["operator"], slow["threshold"]) == (
        "p95_ms",
        "GreaterThan",
        "firstDeltaAlertMilliseconds",
    )
    assert "percentile(first_delta, 95)" in slow["query"]


def test_message_content_is_off_unless_the_deployment_asks() -> None:
    declared = parse(INFRA / "main.bicep")["parameters"]["captureMessageContent"]
    assert (declared["type"], declared["default"]) == ("bool", False)
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert azd["captureMessageContent"]["value"] == "${CAPTURE_MESSAGE_CONTENT=false}"
    setting = bicep_app_settings()["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"]["operator"]["operands"]
    assert setting == {"condition": "captureMessageContent", "true_value": "true", "false_value": "false"}
    assert not load_settings({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false"}).telemetry.capture_content


def test_the_readme_lists_every_metric_and_the_workbooks_queries() -> None:
    readme = (ROOT / "README.md").read_text()
    operating = readme.split("## Operating it")[1].split("\n## ")[0]
    for metric in names.METRICS:
        row = f"| `{metric.name}` | {metric.instrument.replace('_', ' ')} | `{metric.unit}` | "
        row += ", ".join(f"`{dimension}`" for dimension in metric.dimensions) + " |"
        assert row in operating, row
    for query in workbook_queries().values():
        assert f"```kusto\n{query}\n```" in operating
    assert names.SEMANTIC_CONVENTIONS in operating


def test_the_values_the_template_and_the_local_example_write_out_are_valid_settings() -> None:
    # Settings given as literals (not parameters): each is a value the code takes at start-up.
    example = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
    parameters = set(parse(INFRA / "app" / "function.bicep")["parameters"])  # a reference to one parses as its name
    literals = {
        name: value
        for name, value in bicep_app_settings().items()
        if isinstance(value, str) and value not in parameters
    }
    assert literals["UPSTREAM_TRANSPORT"]  # the literals are found
    for values in (example, literals):
        load_settings({name: value for name, value in values.items() if isinstance(value, str)})
