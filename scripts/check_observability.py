#!/usr/bin/env python3
"""Checks deploy/grafana/ and deploy/prometheus/ offline (run by scripts/check-observability,
which makes sure promtool and PyYAML are there).

    python3 scripts/check_observability.py REPO PROMTOOL

1. The metrics the code exports are read from the code itself: every `enum Name` of a
   `Sources/**/*.swift` file gives its `whsync_*` names, and a name that a `Timer(label:)`
   records is a histogram (`_bucket`, `_sum`, `_count`). Label names come from the `enum Label`
   blocks and the `("label", value)` dimensions of the same files. The broker's metrics are
   those of the rabbitmq_prometheus families the scrape config asks for (FAMILIES below, from
   RabbitMQ's collector), with its labels `vhost` and `queue`.
2. Every query of the dashboard (panels and template variables) and every alert rule names only
   those metrics and labels, and only variables the dashboard defines (or Grafana's own); each
   panel query parses as PromQL (promtool, as a recording rule).
3. The dashboard is sane: uid, title, schemaVersion, unique panel ids and refIds, known panel
   types, grid positions inside 24 columns and not overlapping, every non-row panel on the
   `${datasource}` variable with at least one query; the first row is the business row and holds
   the per-warehouse delay, the unposted shipments and receipts and the dead letters by reason.
4. The provisioning agrees with compose: the dashboards folder is mounted where the provider
   looks, the datasource points at the compose Prometheus, Prometheus loads the rules file.
5. `promtool check config` on prometheus.yml, and `promtool test rules` on alerts.test.yml, in
   which every alert of alerts.yml has a test.
6. First of all, a self-test: a dashboard with one defect of each kind (an unexported metric, an
   unknown label, a query that does not parse, overlapping panels, an undefined variable, no
   business row first) must be refused for each.

Prints one summary line and exits 0, or prints every finding and exits 1.
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

# rabbitmq_prometheus, /metrics/detailed: the metrics of each family (its collector,
# prometheus_rabbitmq_core_metrics_collector.erl, prefixed rabbitmq_detailed_).
FAMILIES = {
    "queue_coarse_metrics": [
        "queue_messages_ready",
        "queue_messages_unacked",
        "queue_messages",
        "queue_process_reductions_total",
    ],
    "queue_consumer_count": ["queue_consumers"],
}
BROKER_LABELS = {"vhost", "queue"}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"instance", "job"}

PROMQL_FUNCTIONS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "group", "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "vector", "scalar",
    "abs", "ceil", "floor", "round", "clamp", "clamp_min", "clamp_max", "absent", "absent_over_time", "time",
    "timestamp", "label_replace", "label_join", "sort", "sort_desc", "max_over_time", "min_over_time",
    "avg_over_time", "sum_over_time", "count_over_time", "last_over_time", "changes", "resets", "predict_linear",
    "label_values", "query_result",
}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on", "ignoring",
                   "group_left", "group_right"}
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms", "__all"}
PANEL_TYPES = {"row", "timeseries", "stat", "bargauge", "table", "state-timeline", "gauge", "text", "barchart"}

findings = []


def fail(where, message):
    findings.append(f"{where}: {message}")


# ---- 1. what the code exports ------------------------------------------------------------

def exported_metrics(sources):
    names, labels = {}, {"le"}
    for path in sorted(sources.rglob("*.swift")):
        text = path.read_text(encoding="utf-8")
        block = re.search(r"enum Name \{(.*?)\n    \}", text, re.S)
        if not block:
            continue
        idents = dict(re.findall(r'static let (\w+) = "(whsync_[a-z0-9_]+)"', block.group(1)))
        timers = set(re.findall(r"Timer\(\s*label:\s*(?:\w+\.)*Name\.(\w+)", text))
        for ident, name in idents.items():
            names[name] = ("histogram" if ident in timers else "scalar", path.relative_to(sources.parent))
        label_block = re.search(r"enum Label \{(.*?)\n    \}", text, re.S)
        if label_block:
            labels.update(re.findall(r'static let \w+ = "([a-z_]+)"', label_block.group(1)))
        labels.update(re.findall(r'\(\s*"([a-z_]+)"\s*,\s*[\w.(]', text))
    series = set()
    for name, (kind, _) in names.items():
        if kind == "histogram":
            series.update({name + "_bucket", name + "_sum", name + "_count"})
        else:
            series.add(name)
    return names, series, labels


def broker_metrics(prometheus_config):
    series = set()
    for job in prometheus_config.get("scrape_configs", []):
        if job.get("metrics_path") != "/metrics/detailed":
            continue
        for family in job.get("params", {}).get("family", []):
            if family not in FAMILIES:
                fail("deploy/prometheus/prometheus.yml", f"unknown rabbitmq_prometheus family {family}")
                continue
            series.update("rabbitmq_detailed_" + metric for metric in FAMILIES[family])
    return series


# ---- 2. queries ----------------------------------------------------------------------------

def substitute(expr, variables, where):
    def replace(match):
        name = match.group(1) or match.group(2)
        if name not in variables and name not in GRAFANA_VARIABLES:
            fail(where, f"uses ${name}, which the dashboard does not define")
        return {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "__range_s": "3600",
                "__interval_ms": "60000"}.get(name, ".*")
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", replace, expr)


def check_query(expr, allowed_series, allowed_labels, where):
    """The metric and label names `expr` uses, checked; returns the metric names."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    text = re.sub(r"\[[^\]]*\]", "", text)                     # range selectors
    used_labels = []
    for block in re.findall(r"\{([^}]*)\}", text):
        used_labels += re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", block)
    text = re.sub(r"\{[^}]*\}", " ", text)
    for keyword, names in re.findall(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        used_labels += [n.strip() for n in names.split(",") if n.strip()]
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    # label_values(metric, label): the label is the second argument.
    for label in re.findall(r"label_values\([^,]*,\s*(\w+)\s*\)", expr):
        used_labels.append(label)
        text = text.replace(label + ")", ")")
    for label in used_labels:
        if label not in allowed_labels:
            fail(where, f"label `{label}` is not one the code or the broker exports")
    metrics = []
    for match in re.finditer(r"[A-Za-z_:][\w:]*", text):
        token = match.group(0)
        rest = text[match.end():].lstrip()
        before = text[:match.start()]
        if re.search(r"[\d.]$", before):                         # 1e3, 0.95
            continue
        if token.lower() in PROMQL_KEYWORDS:
            continue
        if rest.startswith("("):
            if token not in PROMQL_FUNCTIONS:
                fail(where, f"unknown function {token}()")
            continue
        metrics.append(token)
        if token not in allowed_series:
            fail(where, f"metric `{token}` is not exported by the code (nor scraped from the broker)")
    return metrics


def check_promql_syntax(promtool, exprs):
    """Every (where, expr) parses: promtool checks them as recording rules."""
    if not exprs:
        return
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(exprs)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        yaml.safe_dump(rules, handle)
        path = handle.name
    result = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    Path(path).unlink()
    if result.returncode != 0:
        for line in (result.stdout + result.stderr).splitlines():
            match = re.search(r"dashboard:query_(\d+)", line)
            where = exprs[int(match.group(1))][0] if match else "dashboard"
            if "error" in line.lower() or match:
                fail(where, f"promtool: {line.strip()}")
        fail("dashboard", "a panel query does not parse (promtool check rules)")


# ---- 3. the dashboard ----------------------------------------------------------------------

def check_dashboard(path, allowed_series, allowed_labels, promtool):
    where = str(path.relative_to(path.parents[3]))
    try:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        fail(where, f"does not load as JSON: {error}")
        return 0
    for key, kind in [("uid", str), ("title", str), ("schemaVersion", int), ("panels", list), ("time", dict)]:
        if not isinstance(dashboard.get(key), kind):
            fail(where, f"`{key}` missing or not a {kind.__name__}")
    if isinstance(dashboard.get("uid"), str) and not (1 <= len(dashboard["uid"]) <= 40):
        fail(where, "uid must have 1-40 characters")
    if isinstance(dashboard.get("schemaVersion"), int) and dashboard["schemaVersion"] < 30:
        fail(where, "schemaVersion below 30 (Grafana 8): migrate it")
    variables = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable.get("name")
        if not name or name in variables:
            fail(where, f"template variable without a name or defined twice: {name}")
        variables[name] = variable
    if variables.get("datasource", {}).get("type") != "datasource" or variables["datasource"].get("query") != "prometheus":
        fail(where, "needs a `datasource` variable of type datasource for prometheus")
    queries = []
    for name, variable in variables.items():
        if variable.get("type") == "query":
            query = variable.get("query")
            query = query.get("query") if isinstance(query, dict) else query
            if not query:
                fail(where, f"variable {name} has no query")
                continue
            queries.append((f"{where} variable {name}", query))

    panels = dashboard.get("panels", [])
    ids, cells = set(), {}
    rows, current_row = [], None
    for panel in panels:
        pid = panel.get("id")
        title = panel.get("title", "")
        at = f"{where} panel {pid} {title!r}"
        if not isinstance(pid, int) or pid in ids:
            fail(at, "id missing, not an integer or not unique")
        ids.add(pid)
        if panel.get("type") not in PANEL_TYPES:
            fail(at, f"unknown panel type {panel.get('type')}")
        if not title:
            fail(at, "no title")
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "hwxy"):
            fail(at, "gridPos needs integer h, w, x, y")
            continue
        if grid["x"] < 0 or grid["y"] < 0 or grid["w"] < 1 or grid["h"] < 1 or grid["x"] + grid["w"] > 24:
            fail(at, f"gridPos {grid} is outside the 24 columns")
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                if (x, y) in cells:
                    fail(at, f"overlaps panel {cells[(x, y)]}")
                    break
                cells[(x, y)] = pid
            else:
                continue
            break
        if panel.get("type") == "row":
            if grid["w"] != 24 or grid["h"] != 1:
                fail(at, "a row spans 24 columns and 1 unit of height")
            current_row = {"title": title, "metrics": set(), "exprs": []}
            rows.append(current_row)
            continue
        if current_row is None:
            fail(at, "sits above the first row: the business row comes first")
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            fail(at, "datasource must be the ${datasource} variable")
        targets = panel.get("targets") or []
        if not targets:
            fail(at, "has no query")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or not all(refs):
            fail(at, "refIds missing or repeated")
        for target in targets:
            expr = target.get("expr", "")
            if not expr.strip():
                fail(at, f"query {target.get('refId')} is empty")
                continue
            queries.append((at, expr))
            if current_row is not None:
                current_row["exprs"].append(expr)

    promql = []
    for at, query in queries:
        expanded = substitute(query, variables, at)
        metrics = check_query(expanded, allowed_series, allowed_labels, at)
        if not metrics:
            fail(at, "names no metric")
        if " variable " not in at:
            promql.append((at, expanded))
        for row in rows:
            if query in row["exprs"]:
                row["metrics"].update(metrics)
    check_promql_syntax(promtool, promql)

    if not rows or not rows[0]["title"].lower().startswith("business"):
        fail(where, "the first row must be the business row")
    else:
        business = rows[0]
        text = "\n".join(business["exprs"])
        wanted = {
            "the delay per warehouse": "whsync_oldest_unposted_age_seconds" in business["metrics"]
            and "warehouse" in text,
            "unposted shipments": re.search(r'whsync_unposted_events\{stream="shipment"', text) is not None,
            "unposted receipts": re.search(r'whsync_unposted_events\{stream="receipt"', text) is not None,
            "dead letters by reason": re.search(r"by \([^)]*reason[^)]*\) \([^)]*whsync_events_dead_lettered_total", text)
            is not None,
        }
        for what, present in wanted.items():
            if not present:
                fail(where, f"the business row does not show {what}")
    return len(queries)


# ---- 4. provisioning and compose -----------------------------------------------------------

def check_provisioning(deploy):
    compose = yaml.safe_load((deploy / "compose.yaml").read_text())
    services = compose.get("services", {})
    grafana = services.get("grafana")
    prometheus = services.get("prometheus")
    if not grafana or not prometheus:
        fail("deploy/compose.yaml", "needs the services grafana and prometheus")
        return
    mounts = {}
    for volume in grafana.get("volumes", []) + prometheus.get("volumes", []):
        if isinstance(volume, str) and volume.startswith("./"):
            source, target = volume.split(":")[:2]
            mounts[source] = target
    dashboards_at = mounts.get("./grafana/dashboards")
    if mounts.get("./grafana/provisioning") != "/etc/grafana/provisioning":
        fail("deploy/compose.yaml", "grafana must mount ./grafana/provisioning at /etc/grafana/provisioning")
    for provider_file in sorted((deploy / "grafana/provisioning/dashboards").glob("*.yml")):
        for provider in yaml.safe_load(provider_file.read_text()).get("providers", []):
            if provider.get("options", {}).get("path") != dashboards_at:
                fail(str(provider_file.relative_to(deploy.parent)),
                     f"provider path {provider.get('options', {}).get('path')} is not where compose mounts "
                     f"./grafana/dashboards ({dashboards_at})")
    for source_file in sorted((deploy / "grafana/provisioning/datasources").glob("*.yml")):
        for source in yaml.safe_load(source_file.read_text()).get("datasources", []):
            if source.get("type") == "prometheus" and source.get("url") != "http://prometheus:9090":
                fail(str(source_file.relative_to(deploy.parent)), "the Prometheus datasource must be http://prometheus:9090")
    config_target = mounts.get("./prometheus/prometheus.yml")
    rules_target = mounts.get("./prometheus/alerts.yml")
    if not config_target or not rules_target:
        fail("deploy/compose.yaml", "prometheus must mount ./prometheus/prometheus.yml and ./prometheus/alerts.yml")
    else:
        config = yaml.safe_load((deploy / "prometheus/prometheus.yml").read_text())
        loaded = [str(Path(config_target).parent / f) for f in config.get("rule_files", [])]
        if rules_target not in loaded:
            fail("deploy/prometheus/prometheus.yml", f"rule_files does not load {rules_target}")


# ---- 5. alerts -------------------------------------------------------------------------------

def check_alerts(prometheus_dir, allowed_series, allowed_labels, promtool):
    rules = yaml.safe_load((prometheus_dir / "alerts.yml").read_text())
    alerts = []
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            alerts.append(name)
            metrics = check_query(rule.get("expr", ""), allowed_series, allowed_labels, f"alerts.yml {name}")
            if not metrics:
                fail(f"alerts.yml {name}", "names no metric")
            if rule.get("alert") and not rule.get("annotations", {}).get("summary"):
                fail(f"alerts.yml {name}", "no summary annotation")
    tests = yaml.safe_load((prometheus_dir / "alerts.test.yml").read_text())
    tested = {case.get("alertname") for test in tests.get("tests", []) for case in test.get("alert_rule_test", [])}
    for name in alerts:
        if name not in tested:
            fail(f"alerts.yml {name}", "has no test in alerts.test.yml")
    for command in ([promtool, "check", "config", "prometheus.yml"], [promtool, "test", "rules", "alerts.test.yml"]):
        result = subprocess.run(command, cwd=prometheus_dir, capture_output=True, text=True)
        if result.returncode != 0:
            fail("deploy/prometheus", f"`promtool {' '.join(command[1:])}` failed:\n{result.stdout}{result.stderr}")
    return len(alerts)


def self_test(series, labels, promtool):
    """The checks catch what they are for: a dashboard with one defect of each kind is refused
    with one finding per defect (as the store conformance suite proves itself on a broken store)."""
    def panel(pid, y, expr, title="p"):
        return {"id": pid, "type": "timeseries", "title": title, "datasource": {"uid": "${datasource}"},
                "gridPos": {"h": 4, "w": 12, "x": 0, "y": y}, "targets": [{"refId": "A", "expr": expr}]}
    broken = {
        "uid": "broken", "title": "broken", "schemaVersion": 39, "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
        "panels": [
            {"id": 1, "type": "row", "title": "Technical", "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}},
            panel(2, 1, "sum(whsync_no_such_metric_total)"),
            panel(3, 5, "sum by (warehose) (whsync_events_total)"),
            panel(4, 9, "sum(rate(whsync_events_total[5m])"),
            panel(5, 11, "sum(whsync_events_total{stream=~\"$nosuch\"})"),
        ],
    }
    expected = [
        "metric `whsync_no_such_metric_total` is not exported",
        "label `warehose` is not one",
        "does not parse",
        "overlaps panel 4",
        "uses $nosuch",
        "the first row must be the business row",
    ]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "deploy/grafana/dashboards/broken.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(broken))
        check_dashboard(path, series, labels, promtool)
    caught = list(findings)
    findings.clear()
    missed = [what for what in expected if not any(what in finding for finding in caught)]
    if missed:
        fail("scripts/check_observability.py self-test", f"a broken dashboard was not refused for: {missed}; "
             f"findings were {caught}")


def main():
    repo, promtool = Path(sys.argv[1]), sys.argv[2]
    deploy = repo / "deploy"
    names, series, labels = exported_metrics(repo / "Sources")
    self_test(series, labels, promtool)
    for required in ["whsync_events_total", "whsync_oldest_unposted_age_seconds", "whsync_posted_total"]:
        if required not in names:
            fail("Sources", f"{required} not found: the reading of the code's metric names is broken")
    prometheus_config = yaml.safe_load((deploy / "prometheus/prometheus.yml").read_text())
    series |= broker_metrics(prometheus_config)
    labels |= BROKER_LABELS | TARGET_LABELS
    queries = 0
    for dashboard in sorted((deploy / "grafana/dashboards").glob("*.json")):
        queries += check_dashboard(dashboard, series, labels, promtool)
    check_provisioning(deploy)
    alerts = check_alerts(deploy / "prometheus", series, labels, promtool)
    if findings:
        print("\n".join(findings))
        print(f"{len(findings)} finding(s)", file=sys.stderr)
        return 1
    print(f"observability: {len(names)} metrics exported by the code; {queries} dashboard queries and "
          f"{alerts} alert rules name only those (and the broker's); promtool test rules passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
