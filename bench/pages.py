#!/usr/bin/env python3
"""The web app's pages on the benchmark's data set (issue 25: every page under 50 ms): p50 and
p99 of each page, fetched one after another by a signed-in browser's requests (session cookie,
keep-alive), with the server pinned to one core as in bench/suite.py.

Today and Analytics rank or sum the whole organization, and remember the answer until the next
commit (src/db/memo.rs). So each is measured twice: as a person re-reading it sees it, and
"after a change", where an open deal is moved to another open stage through the API (untimed)
before every request, so each request computes the page again after a commit that changes a
deal, its stage history and the totals, as it does while agents work.

    bench/pages.py [--binary PATH] [--requests N]

The data set is the suite's seeded file (target/bench/seeded.sqlite: 100,000 leads, 100,000
deals, 1,000,000 activities, 10,000 companies, 20 users), seeded here with the suite's sizes
when it is missing. The server runs on a copy, so the seeded file stays as it was. Prints a
Markdown table.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRISTINE = ROOT / "target" / "bench" / "seeded.sqlite"
SIZES = {"leads": 100_000, "deals": 100_000, "companies": 10_000, "activities": 1_000_000, "users": 20}
PASSWORD = "bench web password"
TARGET_MS = 50.0


def log(msg):
    print(f"[pages] {msg}", file=sys.stderr, flush=True)


def seeded(binary):
    if PRISTINE.exists():
        return
    PRISTINE.parent.mkdir(parents=True, exist_ok=True)
    log(f"seeding {SIZES} into {PRISTINE} ...")
    args = [binary, "seed", "--db", str(PRISTINE), "--quiet", "--seed", "42", "--campaigns", "0"]
    for k, v in SIZES.items():
        args += [f"--{k}", str(v)]
    subprocess.run(args, check=True)
    # Everything into the main file, as bench/suite.py leaves it: the file is copied alone.
    with sqlite3.connect(PRISTINE) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def percentile(sorted_ms, p):
    return sorted_ms[min(len(sorted_ms) - 1, int(round(p / 100 * (len(sorted_ms) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "target/x86_64-unknown-linux-gnu/release/clozup"))
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    binary = args.binary
    seeded(binary)
    work = Path(tempfile.mkdtemp())
    db = work / "crm.sqlite"
    shutil.copy(PRISTINE, db)
    with sqlite3.connect(db) as c:
        owner = c.execute("SELECT email FROM users WHERE role = 'owner' LIMIT 1").fetchone()[0]
        deal, pipeline = c.execute("SELECT id, pipeline_id FROM deals WHERE status = 'open' ORDER BY id "
                                   "LIMIT 1 OFFSET 5000").fetchone()
        moves = [n for (n,) in c.execute("SELECT name FROM stages WHERE pipeline_id = ? AND kind = 'open' "
                                         "ORDER BY position LIMIT 2", (pipeline,))]
        lead = c.execute("SELECT id FROM leads ORDER BY id LIMIT 1 OFFSET 5000").fetchone()[0]
        word = c.execute("SELECT last_name FROM leads ORDER BY id LIMIT 1 OFFSET 7000").fetchone()[0]
    subprocess.run([binary, "users", "set-password", "--db", str(db), "--email", owner],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    key = subprocess.run([binary, "keys", "create", "--db", str(db), "--name", "pages",
                          "--scopes", "read,write"], text=True, check=True,
                         capture_output=True).stdout.strip()
    port = 18000 + os.getpid() % 1000
    server = subprocess.Popen(
        ["taskset", "-c", "0", binary, "serve", "--db", str(db), "--bind", f"127.0.0.1:{port}",
         "--rate-limit", "off", "--log", "info"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    # Pages are timed at rest: after the start-up work the server announces (its first signal
    # sweep reads every open deal, on the one core the pages get), as bench/suite.py does.
    at_rest = threading.Event()

    def follow_log():
        for line in server.stderr:
            if "start-up sweep finished" in line:
                at_rest.set()

    threading.Thread(target=follow_log, daemon=True).start()
    try:
        if not at_rest.wait(timeout=300):
            sys.exit("the server never logged the end of its start-up sweep")
        conn = None
        for _ in range(600):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("GET", "/health")
                conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.05)
        form = urllib.parse.urlencode({"email": owner, "password": PASSWORD})
        conn.request("POST", "/login", body=form,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        resp.read()
        cookie = re.match(r"(clozup_session=[^;]+)", resp.getheader("set-cookie")).group(1)
        writer = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        changes = 0

        def change():
            nonlocal changes
            changes += 1
            move = json.dumps({"stage": moves[changes % 2]})
            writer.request("POST", f"/api/v1/deals/{deal}/move", body=move, headers={
                "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            r = writer.getresponse()
            r.read()
            if r.status != 200:
                sys.exit(f"moving a deal: {r.status}")

        pages = [
            ("Today (the agenda)", "/today"),
            ("Today, after a change", "/today", change),
            ("Pipeline board", "/board"),
            ("Deal page", f"/deals/{deal}"),
            ("Leads, first page", "/leads"),
            ("Leads, searched", f"/leads?q={urllib.parse.quote(word)}"),
            ("Lead 360", f"/leads/{lead}"),
            ("Campaigns", "/campaigns"),
            ("Analytics (four charts)", "/analytics"),
            ("Analytics, after a change", "/analytics", change),
            ("Settings: organization", "/settings"),
            ("Settings: users", "/settings/users"),
            ("Settings: API keys", "/settings/keys"),
        ]
        rows = []
        for label, path, *before in pages:
            times = []
            for i in range(args.requests + 5):
                for f in before:
                    f()
                started = time.perf_counter()
                conn.request("GET", path, headers={"Cookie": cookie})
                r = conn.getresponse()
                body = r.read()
                elapsed = (time.perf_counter() - started) * 1000
                if r.status != 200:
                    sys.exit(f"{path}: {r.status} {body[:300]!r}")
                if i >= 5:  # the first few warm the caches
                    times.append(elapsed)
            times.sort()
            rows.append((label, path, percentile(times, 50), percentile(times, 99), len(body)))
            log(f"{label}: p99 {rows[-1][3]:.1f} ms")
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    print(f"Web app pages on the seeded data set ({SIZES['leads']:,} leads, {SIZES['deals']:,} deals, "
          f"{SIZES['activities']:,} activities), {args.requests} sequential requests each, server on one core:\n")
    print("| Page | p50 ms | p99 ms | HTML KB | under 50 ms (p99) |")
    print("|---|---:|---:|---:|---|")
    for label, path, p50, p99, size in rows:
        print(f"| {label} (`{path.split('?')[0]}`) | {p50:.1f} | {p99:.1f} | {size / 1024:.0f} | "
              f"{'met' if p99 < TARGET_MS else '**missed**'} |")


if __name__ == "__main__":
    main()
