#!/usr/bin/env python3
"""Scrapes a real server's /metrics and parses it with the Prometheus project's own Python
parser (prometheus_client.parser), as Prometheus would read it: every family parses, has the
type it should, histograms are cumulative with _count equal to the +Inf bucket, and the
requests made here are counted. Run by .ci/metrics.

    scrape.py API_BASE METRICS_BASE KEY
"""

import json
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

api, metrics, key = sys.argv[1:4]


def call(method, path, body=None):
    req = urllib.request.Request(api + "/api/v1" + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("authorization", "Bearer " + key)
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


assert call("POST", "/leads", {"first_name": "Prom", "email": "prom@metrics.example"}) == 201
for _ in range(5):
    assert call("GET", "/leads?per_page=2") == 200
assert call("GET", "/leads/ld_missing") == 404

with urllib.request.urlopen(metrics + "/metrics") as r:
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers["content-type"]
    text = r.read().decode()

families = {f.name: f for f in text_string_to_metric_families(text)}
expected = {
    "clozup_http_requests": "counter",
    "clozup_http_request_duration_seconds": "histogram",
    "clozup_db_write_queue_depth": "gauge",
    "clozup_db_commit_duration_seconds": "histogram",
    "clozup_db_read_wait_seconds": "histogram",
    "clozup_webhook_backlog": "gauge",
    "clozup_email_backlog": "gauge",
    "clozup_sse_streams_open": "gauge",
    "clozup_build_info": "gauge",  # the text format 0.0.4 has no info type
    "process_resident_memory_bytes": "gauge",
    "process_cpu_seconds": "counter",
}
for name, kind in expected.items():
    assert name in families, f"{name} missing; parsed {sorted(families)}"
    assert families[name].type == kind, f"{name} is a {families[name].type}, not a {kind}"


def value(family, sample, **labels):
    for s in families[family].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no {sample} {labels} in {family}")


assert value("clozup_http_requests", "clozup_http_requests_total",
             method="GET", route="list_leads", status="200") == 5
assert value("clozup_http_requests", "clozup_http_requests_total",
             method="POST", route="create_lead", status="201") == 1
assert value("clozup_http_requests", "clozup_http_requests_total",
             method="GET", route="get_lead", status="404") == 1
# Histograms: buckets cumulative, +Inf equal to _count, per series.
for name in ("clozup_http_request_duration_seconds", "clozup_db_commit_duration_seconds",
             "clozup_db_read_wait_seconds"):
    series = {}
    for s in families[name].samples:
        key_labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        series.setdefault(key_labels, {"buckets": [], "count": None})
        if s.name.endswith("_bucket"):
            series[key_labels]["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            series[key_labels]["count"] = s.value
    assert series, f"{name} has no series"
    for labels, h in series.items():
        counts = [c for _, c in sorted(h["buckets"])]
        assert counts == sorted(counts), f"{name}{labels}: buckets not cumulative: {counts}"
        assert counts[-1] == h["count"], f"{name}{labels}: +Inf {counts[-1]} != count {h['count']}"
assert value("process_resident_memory_bytes", "process_resident_memory_bytes") > 1e6
print(f"metrics: {len(families)} families parsed by prometheus_client "
      f"{__import__('importlib.metadata').metadata.version('prometheus-client')}; counts and histograms consistent")
