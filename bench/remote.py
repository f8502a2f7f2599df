"""bench/run's remote section: state objects in a real SeaweedFS (S3) and a lock table in moto
(DynamoDB), both started here on loopback ports from `.tools/remote` (`tools/install-remote`), as
tests/it/remote/servers.rs starts them. iacwatch is measured against what a user would script
against the same server (`aws s3 cp --recursive`, a boto3 loop), and `serve` is watched through its
own request counters (`iacwatch_remote_requests_total`)."""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ACCESS_KEY = "iacwatch-bench-key"
SECRET_KEY = "iacwatch-bench-secret"
BUCKET = "bench"
TABLE = "locks"
ROOT = f"s3://{BUCKET}"
POLL_INTERVAL = "1s"
WEED_PORTS = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
              "filer.port.grpc", "s3.port", "s3.port.grpc", "webdav.port", "admin.port", "admin.port.grpc"]
WEED_SOCKETS = ["filer", "s3", "master-grpc", "volume-grpc", "filer-grpc", "s3-grpc", "admin-grpc"]
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "s3_client.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url):
    try:
        urllib.request.urlopen(url, timeout=2)
    except urllib.error.HTTPError:
        return True  # any status: the server is up
    except OSError:
        return False
    return True


class Servers:
    """`weed mini` and `moto_server` on free loopback ports, stopped by `stop` (by their own pids)."""

    def __init__(self, repo, work, log):
        tools = os.path.join(repo, ".tools", "remote")
        self.python = os.path.join(tools, "venv", "bin", "python")
        # In memory when /dev/shm is there: the disk of a shared machine is not what is measured
        # (nor is it what S3 is), and `aws s3 cp` writes its 10,000 files there too.
        self.dir = tempfile.mkdtemp(prefix="iacwatch-bench-remote-", dir="/dev/shm" if os.path.isdir("/dev/shm")
                                    else work)
        os.makedirs(os.path.join(self.dir, "data"))
        self.ports = [free_port() for _ in WEED_PORTS]
        s3_port = self.ports[WEED_PORTS.index("s3.port")]
        self.s3 = f"http://127.0.0.1:{s3_port}"
        moto_port = free_port()
        self.dynamodb = f"http://127.0.0.1:{moto_port}"
        self.env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1",
                    "S3_ENDPOINT": self.s3, "DYNAMODB_ENDPOINT": self.dynamodb}
        weed_log = open(os.path.join(self.dir, "weed.log"), "ab")
        self.weed = subprocess.Popen(
            [os.path.join(tools, "bin", "weed"), "mini", f"-dir={os.path.join(self.dir, 'data')}",
             "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false", "-admin.ui=false",
             "-s3.port.iceberg=0", "-s3.port.lance=0"] + [f"-{f}={p}" for f, p in zip(WEED_PORTS, self.ports)],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=weed_log, stderr=weed_log,
            env=dict(os.environ, **self.env))
        self.moto = subprocess.Popen([os.path.join(tools, "bin", "moto_server"), "-H", "127.0.0.1", "-p",
                                      str(moto_port)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 90
        while not (answers(self.s3) and answers(self.dynamodb)):
            if time.time() > deadline or self.weed.poll() is not None or self.moto.poll() is not None:
                self.stop()
                raise SystemExit(f"SeaweedFS or moto did not start (see {self.dir}/weed.log)")
            time.sleep(0.2)
        log(f"SeaweedFS at {self.s3}, moto at {self.dynamodb}")

    def client(self, *args):
        return [self.python, CLIENT, *args]

    def stop(self):
        for proc in (self.weed, self.moto):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for port in self.ports:
            for kind in WEED_SOCKETS:
                try:
                    os.remove(f"/tmp/seaweedfs-{kind}-{port}.sock")
                except OSError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)


def awscli(repo, work, log):
    """`aws` (awscli from PyPI) in a virtual environment of its own under target/bench, installed
    once; None (and why) when it cannot be installed."""
    venv = os.path.join(work, "awscli-venv")
    aws = os.path.join(venv, "bin", "aws")
    if not os.path.exists(aws):
        log("installing awscli into target/bench/awscli-venv (pip)")
        try:
            subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True)
            subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "awscli"], check=True,
                           capture_output=True, timeout=600)
        except (subprocess.SubprocessError, OSError) as e:
            return None, f"awscli could not be installed from PyPI: {type(e).__name__}"
    version = subprocess.run([aws, "--version"], capture_output=True, text=True)
    return aws, (version.stdout or version.stderr).strip().split()[0]


def metrics_counters(daemon):
    """`{"family:operation": value}` of iacwatch_remote_*_total for ROOT."""
    text = daemon.get("/metrics")[1].decode()
    out = {}
    for line in text.splitlines():
        for family in ("requests", "request_errors"):
            prefix = f'iacwatch_remote_{family}_total{{root="{ROOT}",operation="'
            if line.startswith(prefix):
                operation, _, value = line[len(prefix):].partition('"} ')
                out[f"{family}:{operation}"] = float(value)
    return out


def remote_section(h, count, runs, slow_runs, changes, steady_seconds, quiet_wait):
    """h: bench/run's helpers (log, compare, wait_quiet, Daemon, percentile, BIN, STALE, REPO, WORK)."""
    log = h["log"]
    if not os.path.exists(os.path.join(h["REPO"], ".tools", "remote", "bin", "weed")):
        log("remote: .tools/remote is missing (tools/install-remote); section skipped")
        return None
    servers = Servers(h["REPO"], h["WORK"], log)
    saved = {k: os.environ.get(k) for k in servers.env}
    os.environ.update(servers.env)  # the daemon and every command of the section inherit them
    out = {"objects": count, "poll_interval": POLL_INTERVAL}
    try:
        log(f"remote: uploading {count} states and their lock-table items")
        started = time.perf_counter()
        filled = subprocess.run(servers.client("fill", BUCKET, TABLE, str(count), "1"), check=True,
                                capture_output=True, text=True)
        manifest = json.loads(filled.stdout)
        out["fill_seconds"] = time.perf_counter() - started
        out.update({k: manifest[k] for k in ("items", "state_bytes", "median_state", "largest")})
        out["locked"] = len(manifest["locked"])
        flags = ["--s3-endpoint", servers.s3, "--s3-force-path-style", "--dynamodb-table", TABLE,
                 "--dynamodb-endpoint", servers.dynamodb]
        scan = [h["BIN"], "scan", "--format", "json", "--stale-lock-after", h["STALE"], *flags, ROOT]

        # 1. First full listing and classification, against what a user would script.
        no_table = [h["BIN"], "scan", "--format", "json", "--stale-lock-after", h["STALE"], *flags[:3], ROOT]
        commands = {
            "iacwatch scan": (scan, None, None),
            "iacwatch scan, no lock table": (no_table, None, slow_runs),
            "boto3 loop": (servers.client("loop", BUCKET), None, slow_runs),
            "boto3 loop, 16 threads": (servers.client("loop", BUCKET, "16"), None, slow_runs),
        }
        aws, aws_version = awscli(h["REPO"], h["WORK"], log)
        out["awscli"] = aws_version
        if aws:
            config = os.path.join(servers.dir, "aws-config")
            with open(config, "w") as f:
                f.write("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
            copy = os.path.join(servers.dir, "copy")
            commands["aws s3 cp --recursive"] = (
                f"rm -rf {copy} && {aws} --endpoint-url {servers.s3} s3 cp --recursive --quiet {ROOT} {copy}",
                {"AWS_CONFIG_FILE": config}, slow_runs)
        log(f"remote: first full reading of {count} objects")
        idle = h["wait_quiet"](quiet_wait)
        out["first_reading"] = h["compare"](commands, runs)
        out["first_reading"]["_idle_before"] = idle
        scanned = json.loads(subprocess.run(scan, capture_output=True, text=True).stdout)
        out["scanned"] = scanned["counts"]
        out["scan_errors"] = len(scanned.get("errors", []))

        # 2. serve: ready, steady polls, change to visible, memory.
        h["wait_quiet"](quiet_wait)
        daemon = h["Daemon"](ROOT, [*flags, "--remote-poll-interval", POLL_INTERVAL])
        try:
            out["serve"] = serve_part(dict(h, client=servers.client), daemon, manifest, changes, steady_seconds)
        finally:
            daemon.stop()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        servers.stop()
    return out


def serve_part(h, daemon, manifest, changes, steady_seconds):
    log = h["log"]
    s = {"ready_after": daemon.ready_after, "after_ready": daemon.memory()}
    s["first"] = metrics_counters(daemon)
    log(f"  serve ready after {daemon.ready_after:.2f} s")
    # Steady: nothing changes; the counters over at least `steady_seconds` and at least three
    # polls (a poll is counted by its listing pages; the window starts and ends anywhere in a
    # poll, so the per-poll figures are within one poll's requests of the truth), and the CPU.
    pages = max(1, math.ceil(len(manifest["keys"]) / 1000))
    time.sleep(2)
    c0, cpu0, t0 = metrics_counters(daemon), daemon.cpu_seconds(), time.perf_counter()
    while True:
        time.sleep(0.5)
        c1 = metrics_counters(daemon)
        listed = c1.get("requests:list", 0) - c0.get("requests:list", 0)
        waited = time.perf_counter() - t0
        if (waited >= steady_seconds and listed >= 3 * pages) or waited >= 20 * steady_seconds:
            break
    cpu1, t1 = daemon.cpu_seconds(), time.perf_counter()
    delta = {k: c1.get(k, 0) - c0.get(k, 0) for k in c1}
    got = delta.get("requests:get", 0) + delta.get("requests:get_not_modified", 0)
    polls = delta.get("requests:list", 0) / pages
    s["steady"] = {"seconds": t1 - t0, "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0), "list_pages_per_poll": pages,
                   "polls": polls, "delta": delta}
    log(f"  steady: {polls:.1f} polls in {t1 - t0:.0f} s, GETs {got:.0f}")
    # Change to visible: a state rewritten with one instance tainted (to failed), and its -md5 item
    # after it, as Terraform writes them; the API polled every 5 ms.
    listing = json.loads(daemon.get("/api/v1/workspaces?status=active")[1])["workspaces"]
    locked = set(manifest["locked"])
    candidates = sorted((w["path"], w["id"]) for w in listing
                        if w["root"] == ROOT and w["workspace"] == "default" and w["path"] not in locked)
    step = max(1, len(candidates) // max(1, changes))
    chosen = candidates[::step][:changes]
    helper = subprocess.Popen(h["client"]("serve", BUCKET, TABLE), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    results, missed = [], []
    interval = float(POLL_INTERVAL.rstrip("s"))
    poll_seconds = max(0.0, s["steady"]["seconds"] / polls - interval) if polls else 60.0
    try:
        for key, ws_id in chosen:
            helper.stdin.write(f"taint {key}\n")
            helper.stdin.flush()
            written = float(helper.stdout.readline().split()[1])
            # Two polls after the PUT at most (a poll between the state's PUT and its -md5 item
            # sees them differ, and the next one shows the change), and never less than 30 s.
            deadline = written + max(30.0, 3 * (interval + poll_seconds))
            while True:
                status, body = daemon.get(f"/api/v1/workspaces/{ws_id}")
                now = time.monotonic()
                if status == 200 and json.loads(body)["status"] == "failed":
                    results.append(now - written)
                    break
                if now > deadline:
                    missed.append(key)
                    log(f"  {key}: not failed {now - written:.0f} s after the PUT")
                    break
                time.sleep(0.005)
            time.sleep(0.3)
    finally:
        helper.stdin.close()
        helper.wait(30)
    p = h["percentile"]
    s["latency"] = {"n": len(results), "missed": len(missed), "p50": p(results, 50), "p90": p(results, 90),
                    "max": max(results, default=float("nan")), "min": min(results, default=float("nan"))}
    log(f"  change to visible p50 {s['latency']['p50']:.2f} s, max {s['latency']['max']:.2f} s")
    s["end"] = daemon.memory()
    s["last"] = metrics_counters(daemon)
    return s


# ---------------------------------------------------------------------------------------------
# The report's section


def render(x, secs, mib, size, med):
    """The remote section of docs/performance.md, as a list of lines."""
    w = []
    n = x["objects"]
    fr = x["first_reading"]
    base = med(fr["iacwatch scan"]["wall"])
    w.append(f"## Remote state: {n:,} state objects in S3\n")
    w.append(f"A real SeaweedFS (`weed mini`, S3 API) and a real moto_server (DynamoDB) on loopback, started "
             f"by `bench/run` from `.tools/remote`, SeaweedFS's data in tmpfs (`/dev/shm`) so that the shared "
             f"disk is not what is measured. `bench/s3_client.py fill` uploads {n:,} Terraform v4 states "
             f"({size(x['state_bytes'])}, median {size(x['median_state'])}, largest {size(x['largest'])}; one in "
             f"ten under `env:/staging/`) with 32 concurrent boto3 PUTs in {secs(x['fill_seconds'])}, and writes "
             f"the lock table `{TABLE}` as Terraform does: a `-md5` digest item for every state and a lock item "
             f"for {x['locked']} of them ({x['items']:,} items). Both servers share the 2 cores with iacwatch "
             "and with the other commands, so every figure here includes the servers' own CPU time (moto, "
             "in Python, is far slower than DynamoDB).\n")
    w.append(f"### First full listing and classification (CPUs idle before: {fr['_idle_before'] * 100:.0f}%)\n")
    w.append(f"- `iacwatch scan --format json --s3-endpoint URL --s3-force-path-style --dynamodb-table {TABLE} "
             f"--dynamodb-endpoint URL {ROOT}`: lists the bucket, GETs every state (16 at a time), reads the "
             "lock table, classifies and prints JSON; \"no lock table\": the same without `--dynamodb-table`, "
             "which shows what the lock table's `Scan` pages cost against moto.")
    w.append(f"- boto3 loop: `bench/s3_client.py loop {BUCKET}`, one Python process: `list_objects_v2` pages, "
             "then `get_object` and `json.loads` of every object, counting managed instances (sequential, as "
             "a script is first written); `loop BUCKET 16`: the same with 16 threads. Neither reads locks.")
    if "aws s3 cp --recursive" in fr:
        w.append(f"- `aws s3 cp --recursive --quiet {ROOT} DIR` ({x['awscli']}, from PyPI into a virtual "
                 "environment): only downloads, into a directory beside the server's data (tmpfs `/dev/shm` when "
                 "there; the `rm -rf` of the previous copy is inside the timing); nothing is parsed.")
    else:
        w.append(f"- `aws s3 cp --recursive`: not measured ({x['awscli']}).")
    w.append("")
    w.append("| command | runs | median wall | min | CPU (median) | peak RSS | time / iacwatch |")
    w.append("|---|---|---|---|---|---|---|")
    for cmd, r in fr.items():
        if cmd.startswith("_"):
            continue
        w.append(f"| {cmd} | {len(r['wall'])} | {secs(med(r['wall']))} | {secs(min(r['wall']))} "
                 f"| {secs(med(r['cpu']))} | {mib(max(r['rss']))} | {med(r['wall']) / base:.2f}x |")
    counts = ", ".join(f"{k} {v:,}" for k, v in sorted(x["scanned"].items()) if v)
    w.append(f"\n`iacwatch scan` found: {counts}; {x['scan_errors']} `errors` entries.\n")
    s = x["serve"]
    st = s["steady"]
    d = st["delta"]
    polls = st["polls"] or float("nan")

    def per_poll(op):
        return d.get(f"requests:{op}", 0) / polls

    w.append(f"### `serve` with {n:,} remote workspaces (`--remote-poll-interval {x['poll_interval']}`)\n")
    w.append(f"- Ready (first poll in, `/readyz` 200) **{secs(s['ready_after'])}** after start.")
    w.append(f"- Steady polls of the unchanged bucket, from the daemon's own `iacwatch_remote_requests_total` over "
             f"{st['seconds']:.0f} s: {polls:.1f} polls (listing pages / {st['list_pages_per_poll']} a "
             f"listing), each **{per_poll('list'):.1f} LIST pages, {per_poll('get'):.1f} GETs, "
             f"{per_poll('get_not_modified'):.1f} conditional GETs answered 304, "
             f"{per_poll('lock_table_scan'):.1f} lock-table Scan pages**; errors: "
             f"{sum(v for k, v in d.items() if k.startswith('request_errors:')):.0f}. "
             f"A poll took about {secs(max(0.0, st['seconds'] / polls - 1.0))} beyond the interval; the daemon "
             f"used {st['cpu_pct']:.1f}% of one core meanwhile.")
    lat = s["latency"]
    w.append(f"- Change to visible: {lat['n']} times, `bench/s3_client.py serve` rewrites one state (one instance "
             "tainted, serial + 1) with a PUT, then its `-md5` item, as Terraform does; the script polls "
             "`/api/v1/workspaces/{id}` every 5 ms until `failed` shows, from the moment the state's PUT "
             f"returned: p50 **{secs(lat['p50'])}**, p90 {secs(lat['p90'])}, max {secs(lat['max'])} (min "
             f"{secs(lat['min'])}); {lat.get('missed', 0)} not seen within three polls. Expected: up to one interval "
             "of waiting for the next poll plus the poll itself, and one more poll when a poll fell between the "
             "state's PUT and its `-md5` item.")
    w.append(f"- Memory: RSS {mib(s['after_ready'].get('VmRSS', 0))} when ready, "
             f"{mib(s['end'].get('VmRSS', 0))} at the end; peak (`VmHWM`) **{mib(s['end'].get('VmHWM', 0))}**.\n")
    return w
