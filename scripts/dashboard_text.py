#!/usr/bin/env python3
"""Prints a row of the Grafana dashboard as text, from a running Prometheus (for the demo's
report and for terminals without Grafana).

    python3 scripts/dashboard_text.py PROMETHEUS_URL DASHBOARD_JSON [--row PREFIX] [--window 5m|run]

Each panel of the row (default: the first one, the business row) is evaluated as an instant query
now, with the dashboard's variables at "All", `$__rate_interval` as `--window` and `$__range` as
the time Prometheus has been up (`--window run`: the processes started with the run, so totals are
the counters' values and rates those over the run's seconds); every series is printed with its legend and value in the
panel's unit. Only the standard library: urllib and json.
"""

import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request


def query(base, expr):
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.load(response)
    if answer.get("status") != "success":
        raise RuntimeError(answer.get("error", "query failed"))
    return answer["data"]["result"]


def uptime(base):
    result = query(base, "time() - process_start_time_seconds{job=\"prometheus\"}")
    seconds = int(float(result[0]["value"][1])) if result else 300
    return f"{max(seconds, 60)}s"


def expand(expr, window, span, whole_run=False):
    if whole_run:
        # The processes started with the run: a counter's value is the run's total, and its rate
        # over the run that total over the run's seconds. increase()/rate() would miss what a
        # series counted before its first scrape (a demo's day takes seconds).
        seconds = span.rstrip("s")
        expr = re.sub(r"increase\((\w+\{[^}]*\})\[\$__range\]\)", r"(\1)", expr)
        expr = re.sub(r"rate\((\w+\{[^}]*\})\[\$__rate_interval\]\)", r"(\1 / " + seconds + ")", expr)
    expr = expr.replace("$__rate_interval", window).replace("$__range", span).replace("$__interval", window)
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def legend(template, labels):
    if not template:
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip()


def formatted(value, unit, mappings):
    if math.isnan(value):
        return "-"
    for mapping in mappings:
        text = mapping.get("options", {}).get(str(int(value)) if value == int(value) else str(value), {}).get("text")
        if text:
            return text
    if unit == "s":
        if value >= 3600:
            return f"{value / 3600:.1f} h"
        if value >= 60:
            return f"{value / 60:.1f} min"
        if value >= 1:
            return f"{value:.1f} s"
        return f"{value * 1000:.0f} ms"
    if unit == "ops":
        return f"{value:.2f}/s"
    # Counts (increase() extrapolates a little): whole numbers; small rates keep two decimals.
    return f"{value:.0f}" if abs(value) >= 1 or value == 0 else f"{value:.2f}"


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    base, path = args[0], args[1]
    row_prefix, window = None, "5m"
    for i, arg in enumerate(args):
        if arg == "--row":
            row_prefix = args[i + 1]
        if arg == "--window":
            window = args[i + 1]
    dashboard = json.load(open(path, encoding="utf-8"))
    span = uptime(base)
    whole_run = window == "run"
    if whole_run:
        window = span
    rows, current = [], None
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            current = (panel["title"], [])
            rows.append(current)
        elif current:
            current[1].append(panel)
    chosen = [r for r in rows if row_prefix is None or r[0].lower().startswith(row_prefix.lower())]
    if row_prefix is None:
        chosen = rows[:1]
    for title, panels in chosen:
        scope = f"since the run began ({span}): totals and average rates" if whole_run else f"rates over {window}, totals over {span}"
        print(f"== {dashboard['title']}: {title} (now; {scope}) ==")
        for panel in panels:
            defaults = panel.get("fieldConfig", {}).get("defaults", {})
            unit, mappings = defaults.get("unit"), defaults.get("mappings", [])
            lines = []
            for target in panel.get("targets", []):
                try:
                    result = query(base, expand(target["expr"], window, span, whole_run))
                except Exception as error:  # noqa: BLE001 - a report line, not a crash
                    lines.append(f"    (query failed: {error})")
                    continue
                for series in sorted(result, key=lambda s: legend(target.get("legendFormat", ""), s["metric"])):
                    value = float(series["value"][1])
                    lines.append(f"    {legend(target.get('legendFormat', ''), series['metric']):<32} "
                                 f"{formatted(value, unit, mappings)}")
            print(f"  {panel['title']}")
            print("\n".join(lines) if lines else "    (no data)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
