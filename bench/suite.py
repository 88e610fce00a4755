#!/usr/bin/env python3
"""The benchmark suite behind `bench/run`: seeds one data set, then measures, in interleaved
rounds, Clozup's workloads W1-W9 on one pinned core with wrk on the other and their anchors (the
server's bare /health, the same queries in-process with rusqlite, PocketBase loaded with the same
rows and indexes); prints the medians of the rounds with their spread and the ratios taken
within each round, and writes the table to bench/results/.

Only the standard library: it runs from the virtualenv bench/run made for PocketBase.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "bench"
DATA = WORK / "data"
PRISTINE = WORK / "seeded.sqlite"
RESULTS = ROOT / "bench" / "results"
SERVER_CPU, LOAD_CPU = "0", "1"
PB_USER, PB_PASSWORD = "bench@example.com", "bench-password-1234"


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def run(args, env=None, cwd=ROOT):
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, text=True, capture_output=True
    )
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def results_of(text):
    return [json.loads(l[len("RESULT "):]) for l in text.splitlines() if l.startswith("RESULT ")]


def http(method, url, body=None, token=None):
    req = urllib.request.Request(url, method=method)
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", token)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            raw = r.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        sys.exit(f"{method} {url}: {e.code} {e.read().decode(errors='replace')}")


class Server:
    """A server process pinned to the server core; `ready_ms` is from exec to its first 200."""

    def __init__(self, name, args, health_url, env=None, idle_after=None):
        self.name = name
        started = time.monotonic()
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *map(str, args)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.stderr = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        deadline = started + 60
        while True:
            try:
                with urllib.request.urlopen(health_url, timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"{name} did not start:\n{''.join(self.stderr)}")
            time.sleep(0.001)
        self.ready_ms = (time.monotonic() - started) * 1000
        # Idle means at rest: after the start-up work a server announces (Clozup's first signal
        # sweep reads every open deal), then a second more. Sampled during that work, the figure
        # was the sweep's, or not, depending on the moment.
        if idle_after:
            while not any(idle_after in line for line in self.stderr):
                if self.proc.poll() is not None or time.monotonic() > deadline + 120:
                    sys.exit(f"{name} never logged {idle_after!r}:\n{''.join(self.stderr)}")
                time.sleep(0.05)
        time.sleep(1)
        self.idle_kib = rss_kib(self.proc.pid)

    def rss_kib(self):
        return rss_kib(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def wrk(script, base, seconds, target="clozup", key="", connections=32, threads=1):
    """Runs a wrk script on the load core; its RESULT, refusing a run with any error."""
    env = dict(os.environ, BENCH_TARGET=target, BENCH_DATA=str(DATA), CLOZUP_KEY=key,
               BENCH_RUN=str(time.time_ns()))
    out = run(["taskset", "-c", LOAD_CPU, "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
               "--timeout", "30s", "-s", f"bench/wrk/{script}.lua", base], env=env)
    [result] = results_of(out)
    if result["socket_errors"] or result["bad_status"]:
        sys.exit(f"{script} against {target} had errors:\n{out}")
    return result


# Read workloads run this long, unmeasured, before their measured run (on both servers): the
# first seconds after a start read the file into the page caches and say little about either.
WARM_UP_S = 2
READS = ("health", "w1", "w10", "w2", "w6")


def settle():
    """Writes out what the earlier phases left dirty in the kernel's page cache (seeding writes
    a gigabyte), so its writeback does not share the cores with measured runs: it took the first
    workloads after seeding down by a fifth to a third in some runs."""
    log("writing out the page cache ...")
    os.sync()


def seed(binary, sizes):
    db = DATA / "crm.sqlite"
    shutil.rmtree(DATA, ignore_errors=True)
    DATA.mkdir(parents=True)
    log(f"seeding {sizes} ...")
    started = time.monotonic()
    # No seeded campaigns: their due steps would send in the background of every workload
    # (W9 makes the campaign it measures).
    run([binary, "seed", "--db", db, "--quiet", "--seed", "42", "--campaigns", "0",
         *[a for k, v in sizes.items() for a in (f"--{k}", v)]])
    seeded_s = time.monotonic() - started
    key = run([binary, "keys", "create", "--db", db, "--name", "bench",
               "--scopes", "read,write,admin"]).strip()
    return db, key, seeded_s


def write_ids(db):
    """The ids the wrk scripts pick from, for Clozup and (mapped) for PocketBase."""
    conn = sqlite3.connect(db)
    rng = random.Random(7)
    pipeline = conn.execute("SELECT id FROM pipelines WHERE is_default = 1").fetchone()[0]
    lists = {
        "leads": [r[0] for r in conn.execute("SELECT id FROM leads")],
        "owners": [r[0] for r in conn.execute(
            "SELECT DISTINCT owner_id FROM deals WHERE status = 'open' AND owner_id IS NOT NULL")],
        "open-deals": [r[0] for r in conn.execute(
            "SELECT id FROM deals WHERE status = 'open' AND pipeline_id = ?", (pipeline,))],
        "open-stages": [r[0] for r in conn.execute(
            "SELECT id FROM stages WHERE pipeline_id = ? AND kind = 'open'", (pipeline,))],
    }
    open_deals = conn.execute("SELECT count(*) FROM deals WHERE status = 'open'").fetchone()[0]
    conn.close()
    for name, ids in lists.items():
        if len(ids) > 20000:
            ids = rng.sample(ids, 20000)
        (DATA / f"clozup-{name}.txt").write_text("\n".join(ids) + "\n")
        (DATA / f"pocketbase-{name}.txt").write_text("\n".join(map(pb_id, ids)) + "\n")
    return open_deals


def pb_id(clozup_id):
    """PocketBase ids are 15 characters of [a-z0-9]; each row keeps a stable mapped id."""
    return hashlib.sha1(clozup_id.encode()).hexdigest()[:15]


# PocketBase's copy of the two tables the compared workloads read, with the same indexes
# (less org_id, which a one-tenant PocketBase has no use for).
PB_TABLES = {
    "leads": {
        "text": ["first_name", "last_name", "email", "phone", "title", "company", "company_name",
                 "country", "status", "source", "owner", "converted_deal"],
        "number": ["score", "last_activity_at", "converted_at", "version", "created_ms", "updated_ms"],
        "json": ["tags"],
        "indexes": [
            "CREATE UNIQUE INDEX idx_leads_email ON leads (email COLLATE NOCASE) WHERE email != ''",
            "CREATE INDEX idx_leads_created ON leads (created_ms)",
            "CREATE INDEX idx_leads_status ON leads (status, created_ms)",
            "CREATE INDEX idx_leads_owner ON leads (owner, created_ms)",
            "CREATE INDEX idx_leads_company ON leads (company)",
            "CREATE INDEX idx_leads_score ON leads (score)",
            "CREATE INDEX idx_leads_updated ON leads (updated_ms)",
        ],
        "select": """SELECT id, first_name, last_name, email, phone, title, company_id, company_name,
                            country, status, source, owner_id, converted_deal_id, score,
                            last_activity_at, converted_at, version, created_at, updated_at, tags
                     FROM leads""",
    },
    "deals": {
        "text": ["title", "currency", "pipeline", "stage", "status", "owner", "lead", "company",
                 "expected_close_date", "lost_reason"],
        "number": ["value", "closed_at", "stage_entered_at", "last_activity_at", "version",
                   "created_ms", "updated_ms"],
        "json": ["tags"],
        "indexes": [
            "CREATE INDEX idx_deals_created ON deals (created_ms)",
            "CREATE INDEX idx_deals_stage ON deals (stage, created_ms)",
            "CREATE INDEX idx_deals_status_value ON deals (status, value)",
            "CREATE INDEX idx_deals_owner ON deals (owner, created_ms)",
            "CREATE INDEX idx_deals_owner_status_value ON deals (owner, status, value)",
            "CREATE INDEX idx_deals_lead ON deals (lead)",
            "CREATE INDEX idx_deals_company ON deals (company)",
            "CREATE INDEX idx_deals_close ON deals (expected_close_date)",
            "CREATE INDEX idx_deals_updated ON deals (updated_ms)",
        ],
        "select": """SELECT id, title, currency, pipeline_id, stage_id, status, owner_id, lead_id,
                            company_id, expected_close_date, lost_reason, value, closed_at,
                            stage_entered_at, last_activity_at, version, created_at, updated_at, tags
                     FROM deals""",
    },
}


# Columns holding an id, which PocketBase holds as its mapped id.
PB_REFERENCES = {"id", "company", "owner", "converted_deal", "pipeline", "stage", "lead"}


def pocketbase_load(pb, db):
    """Creates PocketBase's collections through its API, then copies the rows in with SQLite
    while it is stopped (its API would take minutes for 200,000 rows)."""
    pb_dir = WORK / "pb_data"
    shutil.rmtree(pb_dir, ignore_errors=True)
    run([pb, "superuser", "upsert", PB_USER, PB_PASSWORD, "--dir", pb_dir])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = Server("PocketBase", [pb, "serve", "--http", f"127.0.0.1:{port}", "--dir", pb_dir, "--automigrate=false"],
                    f"{base}/api/health")
    token = http("POST", f"{base}/api/collections/_superusers/auth-with-password",
                 {"identity": PB_USER, "password": PB_PASSWORD})["token"]
    # Request logging off, for fairness: Clozup logs no requests at the level the bench runs it.
    http("PATCH", f"{base}/api/settings", {"logs": {"maxDays": 0}}, token)
    for name, t in PB_TABLES.items():
        fields = ([{"name": f, "type": "text"} for f in t["text"]]
                  + [{"name": f, "type": "number"} for f in t["number"]]
                  + [{"name": f, "type": "json"} for f in t["json"]])
        http("POST", f"{base}/api/collections", {
            "name": name, "type": "base", "listRule": "", "viewRule": "",
            "fields": fields, "indexes": t["indexes"]}, token)
    server.stop()
    src = sqlite3.connect(db)
    dst = sqlite3.connect(pb_dir / "data.db")
    for name, t in PB_TABLES.items():
        columns = ["id", *t["text"], *t["number"], *t["json"]]
        def convert(row):
            out = []
            for column, value in zip(columns, row):
                if value is None:
                    value = 0 if column in t["number"] else ""
                elif column in PB_REFERENCES:
                    value = pb_id(value)
                out.append(value)
            return out

        rows = map(convert, src.execute(t["select"]))
        with dst:
            dst.executemany(
                f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                rows)
        dst.execute(f"ANALYZE {name}")
    count = {n: dst.execute(f"SELECT count(*) FROM {n}").fetchone()[0] for n in PB_TABLES}
    dst.close()
    src.close()
    return count


def build():
    """The static release binary (the one we ship) and the anchor and event benches."""
    log("building the static release binary and the bench programs ...")
    run(["cargo", "dist"])
    binary = ROOT / "target/x86_64-unknown-linux-gnu/release/clozup"
    out = run(["cargo", "bench", "--locked", "--no-run", "--bench", "anchors", "--bench", "events",
               "--message-format", "json"])
    programs = {}
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            programs[msg["target"]["name"]] = msg["executable"]
    return binary, programs


def versions(binary, pb):
    def first_line(args):
        try:
            return subprocess.run(args, text=True, capture_output=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    commit = run(["git", "rev-parse", "--short", "HEAD"]).strip()
    dirty = run(["git", "status", "--porcelain", "--untracked-files=no"]).strip()
    return {
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "machine": f"{cpu}, {os.cpu_count()} cores, {int(mem) // 1024 // 1024} GiB, Linux {platform.release()}",
        "clozup": first_line([binary, "--version"]),
        "rustc": first_line(["rustc", "--version"]),
        "pocketbase": first_line([pb, "--version"]),
        "wrk": first_line(["wrk", "-v"]),
    }


PHASES = ("seed", "load", "rounds")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5,
                    help="how many times each workload and its anchors are measured, interleaved")
    ap.add_argument("--seconds", type=int, default=5, help="each measured wrk run's length")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--small", action="store_true",
                    help="a tenth of the data set, for trying the harness out")
    ap.add_argument("--from", dest="start", choices=PHASES, default="seed",
                    help="resume a run at this phase, on the data set the last run left")
    ap.add_argument("--report", action="store_true",
                    help="only redo the table from the last run (target/bench/raw.json)")
    args = ap.parse_args()
    if args.rounds < 3:
        sys.exit("--rounds must be at least 3: a median and a spread need three figures")
    saved = WORK / "raw.json"
    if args.report:
        return report(json.loads(saved.read_text()))
    pb = shutil.which("pocketbase") or sys.exit("pocketbase is not on PATH (bench/run installs it)")
    binary, programs = build()
    if args.start == "seed":
        scale = 10 if args.small else 1
        sizes = {"leads": 100_000 // scale, "deals": 100_000 // scale,
                 "companies": 10_000 // scale, "activities": 1_000_000 // scale, "users": 20}
        raw = {"sizes": sizes, "small": args.small}
    else:
        raw = json.loads(saved.read_text())
    raw.update(rounds=args.rounds, seconds=args.seconds, connections=args.connections)
    raw["size"] = binary.stat().st_size
    raw["when"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    raw["info"] = versions(binary, pb)
    started = time.monotonic()
    for phase in PHASES[PHASES.index(args.start):]:
        globals()[f"phase_{phase}"](raw, binary, programs, pb)
        saved.write_text(json.dumps(raw, indent=1))
    log(f"measured in {(time.monotonic() - started) / 60:.1f} min")
    report(raw)


def phase_seed(raw, binary, _programs, _pb):
    db, raw["key"], raw["seeded_s"] = seed(binary, raw["sizes"])
    raw["open_deals"] = write_ids(db)
    # Every round starts from this copy: W3, W4 and W5 write (W3 alone adds tens of thousands
    # of leads a round), and a round that ran on its predecessors' rows would not repeat it.
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    shutil.copyfile(db, PRISTINE)
    log(f"seeded in {raw['seeded_s']:.1f} s; {raw['open_deals']} open deals")


def phase_load(raw, _binary, _programs, pb):
    log("loading PocketBase ...")
    raw["pb_rows"] = pocketbase_load(pb, PRISTINE)


def restore():
    """The seeded file again, as the seed left it, written out before anything is measured."""
    db = DATA / "crm.sqlite"
    for leftover in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(PRISTINE, db)
    settle()


def phase_rounds(raw, binary, programs, pb):
    """Each round measures everything once: Clozup's workloads, PocketBase's, the in-process
    anchors. Rounds alternate which server goes first, so each ratio is taken between
    neighbouring minutes of the machine, and a slow stretch spoils one round, not a figure."""
    raw["round"] = []
    for n in range(raw["rounds"]):
        log(f"round {n + 1} of {raw['rounds']} ...")
        restore()
        parts = [round_clozup, round_pocketbase, round_anchors]
        if n % 2:
            parts.reverse()
        r = {}
        for part in parts:
            part(r, raw, binary, programs, pb)
        raw["round"].append(r)


def round_clozup(r, raw, binary, programs, _pb):
    key, secs, conns = raw["key"], raw["seconds"], raw["connections"]
    port, smtp = free_port(), f"127.0.0.1:{free_port()}"
    base = f"http://127.0.0.1:{port}"
    clozup = Server("Clozup", [binary, "serve", "--db", DATA / "crm.sqlite",
                               "--bind", f"127.0.0.1:{port}", "--rate-limit", "off",
                               "--log", "warn,clozup::server=info",
                               "--sse-max", "100000", "--sse-per-credential", "100000",
                               "--webhook-allow-cidr", "127.0.0.0/8",
                               "--smtp-url", f"smtp://{smtp}"],
                    f"{base}/health", idle_after="start-up sweep finished")
    r["clozup_server"] = {"ready_ms": clozup.ready_ms, "idle_kib": clozup.idle_kib}
    log(f"Clozup ready in {clozup.ready_ms:.0f} ms, {clozup.idle_kib / 1024:.1f} MiB idle")
    c = r["clozup"] = {}

    def measure(name, script, connections=conns):
        log(f"{name} ...")
        if name in READS:
            wrk(script, base, WARM_UP_S, key=key, connections=connections)
        c[name] = wrk(script, base, secs, key=key, connections=connections)
        c[name]["rss_kib"] = clozup.rss_kib()

    for name in ("health", "w1", "w10", "w2", "w3", "w4", "w5"):
        measure(name, name)
    measure("w6", "w6", connections=1)
    log("w1 while w6 runs ...")
    both = {}
    threads = [threading.Thread(target=lambda n=n, k=k: both.__setitem__(n, wrk(n, base, secs, key=key, connections=k)))
               for n, k in (("w6", 1), ("w1", conns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(both) != 2:
        sys.exit("w1 during w6 did not complete")
    c["w1+w6"], c["w6+w1"] = both["w1"], both["w6"]
    c["w1+w6"]["rss_kib"] = clozup.rss_kib()
    log("w7, w8, w9 ...")
    env = dict(os.environ, CLOZUP_BENCH_ADDR=f"127.0.0.1:{port}", CLOZUP_BENCH_KEY=key,
               CLOZUP_BENCH_PID=str(clozup.proc.pid), CLOZUP_BENCH_SMTP=smtp)
    for result in results_of(run(["taskset", "-c", LOAD_CPU, programs["events"]], env=env)):
        c[result["workload"]] = result
    clozup.stop()


def round_anchors(r, raw, _binary, programs, _pb):
    """The same queries in-process, on the server's core, on the same file."""
    log("in-process anchors ...")
    env = dict(os.environ, BENCH_DB=str(DATA / "crm.sqlite"), BENCH_DATA=str(DATA),
               BENCH_SECONDS=str(raw["seconds"]))
    out = run(["taskset", "-c", SERVER_CPU, programs["anchors"]], env=env)
    r["inproc"] = {result["workload"]: result for result in results_of(out)}


def round_pocketbase(r, raw, _binary, _programs, pb):
    port = free_port()
    pbase = f"http://127.0.0.1:{port}"
    peer = Server("PocketBase", [pb, "serve", "--http", f"127.0.0.1:{port}", "--dir", WORK / "pb_data",
                                 "--automigrate=false"],
                  f"{pbase}/api/health", env=dict(os.environ, GOMAXPROCS="1"))
    r["pocketbase_server"] = {"ready_ms": peer.ready_ms, "idle_kib": peer.idle_kib}
    p = r["pocketbase"] = {}
    for name in ("w1", "w2"):
        log(f"PocketBase {name} ...")
        wrk(name, pbase, WARM_UP_S, target="pocketbase", connections=raw["connections"])
        p[name] = wrk(name, pbase, raw["seconds"], target="pocketbase", connections=raw["connections"])
        p[name]["rss_kib"] = peer.rss_kib()
    peer.stop()


def median(values):
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


# A round whose /health ran this far below the run's median had a slow machine, not a slow
# server: it is reported and left out of every median.
SLOW_ROUND = 0.75

# The ratios the targets are set on (issue 7), each taken within a round: (label, how, target
# text, test of the median). `how` gets one round's figures.
RATIOS = [
    ("W1 req/s over PocketBase's", lambda c, i, p: c["w1"]["rps"] / p["w1"]["rps"],
     "≥ 4x", lambda x: x >= 4),
    ("W1 p99: PocketBase's over Clozup's", lambda c, i, p: p["w1"]["p99_ms"] / c["w1"]["p99_ms"],
     "≥ 2x (p99 ≤ ½)", lambda x: x >= 2),
    ("W2 req/s over PocketBase's", lambda c, i, p: c["w2"]["rps"] / p["w2"]["rps"],
     "≥ 5x", lambda x: x >= 5),
    ("W3 req/s over in-process single-row FULL inserts", lambda c, i, p: c["w3"]["rps"] / i["w3"]["rps"],
     "≥ 3x", lambda x: x >= 3),
    ("W6 p50 over the in-process bare scan's", lambda c, i, p: c["w6"]["p50_ms"] / i["w6-scan"]["p50_ms"],
     "< 2x", lambda x: x < 2),
    ("W6 p50 over the same ranking in-process", lambda c, i, p: c["w6"]["p50_ms"] / i["w6"]["p50_ms"],
     "", None),
    ("W1 p99 beside W6 over W1 alone", lambda c, i, p: c["w1+w6"]["p99_ms"] / c["w1"]["p99_ms"],
     "≤ 2x", lambda x: x <= 2),
    ("W1 p99 while a campaign sends over W1 alone (W9's own probe)",
     lambda c, i, p: c["w9"]["w1_p99_ms"] / c["w9"]["w1_alone_p99_ms"], "≤ 2x", lambda x: x <= 2),
    ("W10 req/s (W1 as an MCP tool call) over W1's", lambda c, i, p: c["w10"]["rps"] / c["w1"]["rps"],
     "≥ 0.7x", lambda x: x >= 0.7),
    ("W1 req/s over in-process", lambda c, i, p: c["w1"]["rps"] / i["w1"]["rps"], "", None),
    ("W2 req/s over in-process", lambda c, i, p: c["w2"]["rps"] / i["w2"]["rps"], "", None),
]


def report(raw):
    """The tables, printed and written to bench/results/ (`--report` redoes them from the last
    run's raw figures in target/bench/raw.json). Every figure is the median of the kept rounds,
    with its spread (min–max) beside it."""
    rounds = raw["round"]
    health = median([r["clozup"]["health"]["rps"] for r in rounds])
    kept = [r for r in rounds if r["clozup"]["health"]["rps"] >= SLOW_ROUND * health]
    slow = [f"round {n + 1} (/health {r['clozup']['health']['rps']:,.0f} req/s)"
            for n, r in enumerate(rounds) if r not in kept]
    size, open_deals, sizes, seeded_s = raw["size"], raw["open_deals"], raw["sizes"], raw["seeded_s"]
    info, secs, conns = raw["info"], raw["seconds"], raw["connections"]

    def spread(values, fmt):
        return f"{fmt(min(values))}–{fmt(max(values))}"

    count = lambda v: f"{v:,.0f}"
    ms = lambda v: f"{v:.2f}"
    rows = []

    def row(label, side, name):
        # A workload added since an older run's figures (`--report` on them) has no row.
        if any(name not in r[side] for r in kept):
            return
        runs = [r[side][name] for r in kept]
        cell = lambda key, fmt: fmt(median([x[key] for x in runs])) if key in runs[0] else ""
        span = lambda key, fmt: spread([x[key] for x in runs], fmt) if key in runs[0] else ""
        rss = cell("rss_kib", lambda kib: f"{kib / 1024:.1f}")
        rows.append(f"| {label} | {cell('rps', count)} | {span('rps', count)} | {cell('p50_ms', ms)} | "
                    f"{cell('p99_ms', ms)} | {span('p99_ms', ms)} | {cell('p999_ms', ms)} | {rss} |")

    row("/health (framework ceiling)", "clozup", "health")
    row("W1 get lead by id", "clozup", "w1")
    row("W1 PocketBase", "pocketbase", "w1")
    row("W1 in-process (rusqlite)", "inproc", "w1")
    row("W10 W1 as an MCP tool call (tools/call get_lead)", "clozup", "w10")
    row("W2 deals: filtered, sorted, page of 25", "clozup", "w2")
    row("W2 PocketBase", "pocketbase", "w2")
    row("W2 in-process (rusqlite)", "inproc", "w2")
    row("W3 create lead (synchronous=FULL)", "clozup", "w3")
    row("W3 in-process single-row FULL inserts", "inproc", "w3")
    row("W4 move deal stage", "clozup", "w4")
    row("W5 mix 80/15/4/1", "clozup", "w5")
    row(f"W6 at-risk over {open_deals:,} open deals", "clozup", "w6")
    row("W6 in-process bare scan", "inproc", "w6-scan")
    row("W6 in-process ranking", "inproc", "w6")
    row("W1 while W6 runs", "clozup", "w1+w6")
    row("W6 while W1 runs", "clozup", "w6+w1")
    w7 = kept[0]["clozup"]["w7"]["subscribers"]
    row(f"W7 SSE fan-out, {w7:,} subscribers (ms after the write)", "clozup", "w7")
    row("W8 webhook deliveries to a loopback sink", "clozup", "w8")
    row("W9 campaign: first emails of 10,000 enrolled leads to a loopback SMTP sink", "clozup", "w9")

    ratios = []
    for label, how, target, meets in RATIOS:
        try:
            values = [how(r["clozup"], r["inproc"], r["pocketbase"]) for r in kept]
        except KeyError:
            continue
        m = median(values)
        verdict = "" if meets is None else ("met" if meets(m) else "**missed**")
        ratios.append(f"| {label} | {m:.2f}x | {spread(values, lambda v: f'{v:.2f}x')} | {target} {verdict} |")
    # The server's allocator keeps what the earlier workloads freed, and the streams reuse it:
    # no growth means no figure (`cargo bench --bench events` measures it on a fresh server).
    per_subscriber = median([r["clozup"]["w7"]["kib_per_subscriber"] for r in kept])
    memory = (f"{per_subscriber:.1f} KiB" if per_subscriber > 0
              else "no RSS growth (memory freed by earlier workloads reused)")

    server = lambda side, key: median([r[f"{side}_server"][key] for r in kept])
    idle, pb_idle = server("clozup", "idle_kib"), server("pocketbase", "idle_kib")
    ready, pb_ready = server("clozup", "ready_ms"), server("pocketbase", "ready_ms")
    facts = [
        ("static binary", f"{size:,} bytes = {size / 1e6:.2f} MB = {size / 2**20:.2f} MiB", "≤ 15 MB", size <= 15e6),
        ("RSS idle, seeded data set", f"{idle / 1024:.1f} MiB (PocketBase {pb_idle / 1024:.1f} MiB)", "≤ 64 MB", idle * 1024 <= 64e6),
        ("ready to serve after start", f"{ready:.0f} ms (PocketBase {pb_ready:.0f} ms)", "≤ 200 ms", ready <= 200),
        ("seed", f"{seeded_s:.1f} s for {sizes['leads']:,} leads, {sizes['deals']:,} deals, {sizes['activities']:,} activities, {sizes['companies']:,} companies", "< 60 s", seeded_s < 60),
        ("W7 RSS per SSE subscriber", memory, "", None),
    ]
    when = datetime.datetime.fromisoformat(raw["when"])
    lines = [
        f"# Clozup benchmark, {when:%Y-%m-%d %H:%M} UTC",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        f"- server on core {SERVER_CPU}, wrk (1 thread, {conns} connections, {secs} s per run) on core {LOAD_CPU}; "
        "rate limiting off, request logging off on both servers",
        f"- {len(rounds)} rounds, interleaved (Clozup, PocketBase, in-process anchors; reversed every "
        f"other round), each from the seeded file; {len(rounds) - len(kept)} excluded"
        + (f" for a /health more than {100 - SLOW_ROUND * 100:.0f}% below the median "
           f"({health:,.0f} req/s): {', '.join(slow)}" if slow else ""),
        "- each figure is the median of the kept rounds; min–max is its spread across them",
        "",
        "| Workload | req/s | req/s min–max | p50 ms | p99 ms | p99 min–max | p99.9 ms | RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "| Ratio (each taken within a round) | median | min–max | Target |",
        "|---|---:|---:|---|",
        *ratios,
        "",
        "| Figure | Measured | Target |",
        "|---|---|---|",
        *[f"| {k} | {v} | {t} {'' if ok is None else ('met' if ok else '**missed**')} |" for k, v, t, ok in facts],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if raw.get("small"):
        # A trial of the harness on a tenth of the data: not a result to keep beside the others.
        out = WORK / "latest-small.md"
        out.write_text(text)
        return log(f"written to {out.relative_to(ROOT)} (a --small run is not kept in bench/results/)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{when:%Y-%m-%d-%H%M}-{info['commit'].split()[0]}.md"
    out.write_text(text)
    shutil.copyfile(out, RESULTS / "latest.md")
    log(f"written to {out.relative_to(ROOT)} and bench/results/latest.md")


if __name__ == "__main__":
    main()
