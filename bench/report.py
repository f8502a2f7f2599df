"""Renders bench/run's results as docs/performance.md (with bench/notes.md, the hand-written
analysis, appended)."""

import os
import statistics

HERE = os.path.dirname(os.path.abspath(__file__))


def med(values):
    return statistics.median(values) if values else float("nan")


def secs(s):
    if s != s:
        return "n/a"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    return f"{s:.2f} s"


def ms(s):
    return f"{s * 1000:.1f} ms"


def size(n):
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.0f} MB"
    return f"{n / 1e3:.0f} KB"


def mib(n):
    return f"{n / 2**20:.0f} MiB"


def verdict(ok):
    return "met" if ok else "**missed**"


def ratio(a, b):
    return a / b if b else float("nan")


def render(r):
    out = []
    w = out.append
    m = r["machine"]
    big_name = max(r["corpora"], key=lambda k: r["corpora"][k]["workspaces"])
    small_name = min(r["corpora"], key=lambda k: r["corpora"][k]["workspaces"])
    big = r["corpora"][big_name]
    fs = r["full_scan"][big_name]
    scan_big = med(fs["iacwatch scan"]["wall"])
    jq_big = med(fs["jq batched"]["wall"])
    jq_loop_big = med(fs["jq per-file loop"]["wall"])
    py_big = med(fs["python json.load loop"]["wall"])
    cat_big = med(fs["cat"]["wall"])
    t1 = med(r["threads"]["1 thread"]["wall"])
    t2 = med(r["threads"]["2 threads"]["wall"])
    s = r["serve"]
    lat = s["latency"]
    peak = memory_target(s, big)[0]

    w("# Performance\n")
    w(f"Written by `bench/run{' --quick' if r['quick'] else ''}` on {m['date']} at commit `{m['commit']}`; "
      "do not edit by hand (the analysis at the end comes from `bench/notes.md`).\n")
    if r["quick"]:
        w("> **Smoke run (`--quick`)**: 200 workspaces and few repetitions. The figures only show that "
          "every measurement works; see docs/performance.md for the real ones.\n")
    w("## Headline\n")
    w(f"On {big['workspaces']:,} workspaces ({size(big['state_bytes'])} of state), the same machine, "
      "the same warm page cache, medians of interleaved runs:\n")
    w(f"- **{ratio(jq_big, scan_big):.0f}x faster than batched `jq`** (`find -exec jq ... {{}} +`) and "
      f"**{ratio(py_big, scan_big):.1f}x faster than a Python `json.load` loop**, "
      f"at **{ratio(scan_big, cat_big):.2f}x the time `cat` takes** to read the same files "
      f"({secs(scan_big)} against {secs(jq_big)}, {secs(py_big)} and {secs(cat_big)}); a loop of one `jq` "
      f"per file takes {ratio(jq_loop_big, scan_big):.0f}x as long ({secs(jq_loop_big)}).")
    if r.get("terraform_show"):
        ts = r["terraform_show"]
        w(f"- On {ts['_workspaces']} states real Terraform wrote, **{ratio(med(ts['terraform show -json loop']['wall']), med(ts['iacwatch scan']['wall'])):.0f}x "
          "faster than a `terraform show -json` loop** "
          f"({secs(med(ts['iacwatch scan']['wall']))} against {secs(med(ts['terraform show -json loop']['wall']))}).")
    w(f"- A change is visible in the API **{ms(lat['p50'])} (p50) / {ms(lat['p99'])} (p99)** after the file "
      f"was written ({lat['n']} changes, 200 ms of that is the deliberate quiet time).")
    w(f"- `/metrics` with {s['scrape']['status_series']:,} status series: **{ms(s['scrape']['median'])}** per scrape; "
      f"`serve` peaks at **{mib(peak)}** RSS and idles at **{s['idle_cpu_pct']:.2f}% CPU**.\n")

    w("## Targets\n")
    w("| target (issues 6 and 14) | measured | |")
    w("|---|---|---|")
    rows = [
        ("full scan >= 25x faster than batched jq", f"{ratio(jq_big, scan_big):.1f}x", ratio(jq_big, scan_big) >= 25),
        ("full scan >= 10x faster than the Python loop", f"{ratio(py_big, scan_big):.1f}x",
         ratio(py_big, scan_big) >= 10),
        ("full scan <= 1.0x the time of cat", f"{ratio(scan_big, cat_big):.2f}x", ratio(scan_big, cat_big) <= 1),
        ("2 threads >= 1.6x faster than 1", f"{ratio(t1, t2):.2f}x", ratio(t1, t2) >= 1.6),
        ("killed apply visible within 5 s", r["killed_apply"] or "not run (Terraform not installed)",
         r["killed_apply"] is not None and _seconds(r["killed_apply"]) <= 5),
    ] + serve_targets(s, big) + memory_per_workspace_targets(r.get("serve_memory"))
    for name, value, ok in rows:
        w(f"| {name} | {value} | {verdict(ok)} |")
    w("")

    w("## Machine and method\n")
    w(f"- {m['cores']} cores ({m['cpu']}), {m['mem'] / 2**30:.0f} GiB, Linux {m['kernel']}; "
      f"{m['jq']}, Python {m['python']}. The machine is shared: other builds run beside the benchmark. "
      "Before each comparison the script waits (up to a minute) for the CPUs to be at least 85% idle "
      "and records what it saw.")
    w("- Whole-process timings: the commands of one comparison run interleaved (A B C D, B C D A, ...) "
      "after one warm-up round, so noise falls on all of them alike; the figure is the median. CPU is "
      "user + system time of the process and its children, peak RSS is the maximum resident set of the command (GNU `time -f %M`).")
    w("- Every file is in the page cache (warm): this measures parsing and classifying, not the disk.")
    w("- `iacwatch scan --format json ROOT > /dev/null`: discovers, reads every artifact (states, plans, "
      "locks, markers), classifies and prints JSON.")
    w("- `cat`: `cat` of the JSON artifacts iacwatch parses (states, plans, locks, markers) to /dev/null, "
      "given the list of files: the read limit.")
    w("- jq batched: `find ROOT -name terraform.tfstate -not -path '*/.terraform/*' -exec jq "
      "'[.resources[]? | select(.mode == \"managed\") | .instances | length] | add // 0' {} +`: as few "
      "`jq` processes as the command line allows, each reading many states.")
    w("- jq per-file loop: `while read f; do jq 'FILTER' \"$f\"; done`, the same filter, one `jq` per state "
      "file, as a cron script runs it, given the list of state files (no walk).")
    w("- Python loop: `bench/alternatives/count_resources.py`, one interpreter that `json.load`s each "
      "state file in the list and counts its managed instances.")
    w("- jq and Python only count resources in states; iacwatch also reads plans, locks and markers and "
      "classifies. Their work is a subset of iacwatch's.\n")

    w("## Corpus\n")
    w("`bench/corpus.py` (seed 1): Terraform v4 states indented as Terraform writes them, with resources "
      "in modules, `count`/`for_each` instances, nested blocks, IAM policies as escaped JSON strings, "
      "user data and provider `private` blobs; plans as `terraform show -json` prints them; Terraform "
      "locks, pipeline locks, last-run markers, errored states and crash logs, so that every status is "
      "present.\n")
    w("| corpus | workspaces | state files | state bytes | median state | > 10 MB | largest | JSON artifacts | all files |")
    w("|---|---|---|---|---|---|---|---|---|")
    for name, c in r["corpora"].items():
        w(f"| {name} | {c['workspaces']:,} | {c['states']:,} | {size(c['state_bytes'])} | {size(c['median_state'])} "
          f"| {c['over_10mb']} | {size(c['largest'])} | {c['artifacts']:,}, {size(c['artifact_bytes'])} "
          f"| {size(c['total_bytes'])} |")
    w("")
    w("Statuses, as generated and as `iacwatch scan` found them (named CLI workspaces add a few active ones):\n")
    statuses = ["active", "apply_needed", "drifted", "failed", "inactive", "provisioning", "destroying"]
    w("| corpus | " + " | ".join(statuses) + " |")
    w("|---|" + "---|" * len(statuses))
    for name, c in r["corpora"].items():
        exp = c.get("expected", {})
        got = c.get("scanned", {})
        w(f"| {name} | " + " | ".join(f"{exp.get(st, 0)} / {got.get(st, 0)}" for st in statuses) + " |")
    w("")

    w("## 1. Full scan against cat, jq and Python\n")
    for name, res in r["full_scan"].items():
        c = r["corpora"][name]
        base = med(res["iacwatch scan"]["wall"])
        w(f"### {name} ({c['workspaces']:,} workspaces, {size(c['state_bytes'])} of state)\n")
        w(f"CPUs idle before: {res['_idle_before'] * 100:.0f}%.\n")
        w("| command | runs | median wall | min | CPU (median) | peak RSS | time / iacwatch |")
        w("|---|---|---|---|---|---|---|")
        for cmd in ("iacwatch scan", "cat", "python json.load loop", "jq batched", "jq per-file loop"):
            x = res[cmd]
            w(f"| {cmd} | {len(x['wall'])} | {secs(med(x['wall']))} | {secs(min(x['wall']))} | {secs(med(x['cpu']))} "
              f"| {mib(max(x['rss']))} | {ratio(med(x['wall']), base):.2f}x |")
        w("")

    if "huge" in r:
        h = r["huge"]
        base = med(h["iacwatch scan"]["wall"])
        w(f"## 2. Parse of the largest state ({size(h['_bytes'])})\n")
        w("iacwatch scans a directory holding only that state (a hard link to it).\n")
        w("| command | runs | median wall | CPU | peak RSS | time / iacwatch |")
        w("|---|---|---|---|---|---|")
        for cmd in ("iacwatch scan", "jq", "python json.load", "cat"):
            x = h[cmd]
            w(f"| {cmd} | {len(x['wall'])} | {secs(med(x['wall']))} | {secs(med(x['cpu']))} | {mib(max(x['rss']))} "
              f"| {ratio(med(x['wall']), base):.2f}x |")
        w("")
        w(f"iacwatch parses at {h['_bytes'] / base / 1e6:,.0f} MB/s and peaks at "
          f"{mib(max(h['iacwatch scan']['rss']))} for a {mib(h['_bytes'])} file: the file is parsed from a "
          "read-only mapping, whose page-cache pages count in the resident set as they are read (no copy of "
          "it is made; files above 256 MiB are streamed in constant memory instead), and none of its values "
          "are kept.\n")

    if r.get("terraform_show"):
        ts = r["terraform_show"]
        base = med(ts["iacwatch scan"]["wall"])
        w(f"## Against a `terraform show -json` loop ({ts['_workspaces']} workspaces, {size(ts['_bytes'])} of state)\n")
        w("States real Terraform wrote (`.tools/terraform`, 40 `null_resource` instances with a policy and "
          "user data each), one per workspace; `terraform show -json STATE` runs once per state from an "
          "initialised directory (it reads the provider's schema), as a user who only trusts Terraform's own "
          "reading of its files would script it.\n")
        w("| command | runs | median wall | min | CPU (median) | peak RSS | time / iacwatch |")
        w("|---|---|---|---|---|---|---|")
        for cmd in ("iacwatch scan", "jq batched", "terraform show -json loop"):
            x = ts[cmd]
            w(f"| {cmd} | {len(x['wall'])} | {secs(med(x['wall']))} | {secs(min(x['wall']))} | {secs(med(x['cpu']))} "
              f"| {mib(max(x['rss']))} | {ratio(med(x['wall']), base):.2f}x |")
        w("")

    killed = ("A Terraform apply killed mid-way writes nothing: the daemon sees it by re-checking held locks "
      "(every 2 s by default). `tests/it/serve.rs` (`a_killed_apply_turns_failed_within_seconds_and_recovers`) "
      "kills a real `terraform apply` and asserts `failed` within 5 s with `--lock-check-interval 1s`; "
      + (f"in this run it took **{r['killed_apply']}**.\n" if r["killed_apply"] else
         "it was not run here (Terraform is not installed: `tools/install-terraform`).\n"))
    for line in serve_sections(s, big_name, big, killed):
        w(line)
    for line in memory_per_workspace_section(r.get("serve_memory")):
        w(line)

    th = r["threads"]
    w(f"## 6. Threads ({big_name})\n")
    w(f"`RAYON_NUM_THREADS=1` against `2`, interleaved; CPUs idle before: {th['_idle_before'] * 100:.0f}%.\n")
    w("| threads | runs | median wall | min | CPU (median) | peak RSS |")
    w("|---|---|---|---|---|---|")
    for name in ("1 thread", "2 threads"):
        x = th[name]
        w(f"| {name} | {len(x['wall'])} | {secs(med(x['wall']))} | {secs(min(x['wall']))} | {secs(med(x['cpu']))} "
          f"| {mib(max(x['rss']))} |")
    w(f"\nSpeed-up: **{ratio(t1, t2):.2f}x** (medians), {ratio(min(th['1 thread']['wall']), min(th['2 threads']['wall'])):.2f}x (best runs).\n")

    if r.get("remote"):
        import remote

        for line in remote.render(r["remote"], secs, mib, size, med):
            w(line)

    if r.get("criterion"):
        w("## Parser micro-benchmarks (criterion)\n")
        w("`cargo bench --bench parsers` (`benches/parsers.rs`): generated inputs shaped like Terraform's; "
          "median time per parse.\n")
        w("| benchmark | input | median | throughput |")
        w("|---|---|---|---|")
        for name, x in sorted(r["criterion"].items()):
            tp = f"{x['bytes'] / x['ns'] * 1e3:,.0f} MB/s" if x.get("bytes") else ""
            w(f"| `{name}` | {size(x['bytes']) if x.get('bytes') else ''} | {_ns(x['ns'])} | {tp} |")
        w("")

    notes = os.path.join(HERE, "notes.md")
    if os.path.exists(notes):
        w(open(notes).read().rstrip() + "\n")
    w(f"---\nThe whole run took {r['elapsed'] / 60:.0f} minutes. Raw results: `target/bench/results.json`.")
    return "\n".join(out) + "\n"


def memory_target(s, big):
    """`serve`'s peak RSS, the largest file, and the limit: 64 MiB plus that file."""
    peak = max(s["end"].get("VmHWM", 0), s["after_scan"].get("VmHWM", 0))
    return peak, big["largest"], 64 * 2**20 + big["largest"]


def serve_targets(s, big):
    """The targets of `serve`'s sections: (target, measured, met)."""
    lat, sc = s["latency"], s["scrape"]
    gz = s.get("scrape_gzip")
    peak, largest, rss_limit = memory_target(s, big)
    stall = s.get("history_stall_ms")
    rows = [
        ("p99 event to visible <= quiet time (200 ms) + 100 ms",
         ms(lat["p99"]) + (f" (history's lock held {stall} ms a second)" if stall else ""), lat["p99"] <= 0.3),
        (f"scrape of {big['workspaces']:,} workspaces < 100 ms", ms(sc["median"]) + " median, "
         + ms(sc["p90"]) + " p90", sc["p90"] < 0.1),
    ]
    if gz:
        rows.append((f"/metrics gzip <= 1.5x plain, {big['workspaces']:,} workspaces",
                     f"{ratio(gz['median'], sc['median']):.2f}x ({ms(gz['median'])} median)",
                     ratio(gz["median"], sc["median"]) <= 1.5))
    rows += [
        (f"peak RSS < 64 MiB + largest file ({mib(largest)}) = {mib(rss_limit)}", mib(peak), peak < rss_limit),
        ("idle CPU < 1% (inotify)", f"{s['idle_cpu_pct']:.2f}% over {s['idle_seconds']:.0f} s",
         s["idle_cpu_pct"] < 1),
    ]
    return rows


def memory_per_workspace_targets(sm):
    """`serve`'s resident memory per workspace beyond an empty daemon (bench/serve-memory)."""
    if not sm:
        return []
    return [(f"`serve` RSS per workspace beyond an empty daemon <= 3 KiB, {x['workspaces']:,} workspaces",
             f"{x['per_workspace'] / 1024:.2f} KiB", x["per_workspace"] <= 3 * 1024) for x in sm["sizes"]]


def memory_per_workspace_section(sm):
    """The table of bench/serve-memory, under section 5."""
    if not sm:
        return []
    out = [f"Resident memory per workspace (`bench/serve-memory --runs {sm['runs']}`): `serve` on the corpus "
           "and on an empty directory, each with a fresh history, RSS read once `/readyz` answers 200 and "
           "the RSS has not moved for 2 s; (RSS - RSS of the empty daemon) / workspaces, medians.\n",
           f"| workspaces | RSS when ready | beyond the empty daemon ({sm['empty_rss'] / 2**20:.1f} MiB) | per workspace |",
           "|---:|---:|---:|---:|"]
    for x in sm["sizes"]:
        out.append(f"| {x['workspaces']:,} | {x['rss'] / 2**20:.1f} MiB | {(x['rss'] - sm['empty_rss']) / 2**20:.1f} MiB "
                   f"| **{x['per_workspace'] / 1024:.2f} KiB** |")
    out.append("")
    return out


def serve_sections(s, big_name, big, after_latency=None):
    """Sections 3 to 5 (event to visible, /metrics, memory and idle CPU), as lines."""
    out = []
    w = out.append
    lat = s["latency"]
    peak, largest, rss_limit = memory_target(s, big)
    w(f"## 3. Event to visible ({big['workspaces']:,} watched workspaces)\n")
    w(f"`iacwatch serve` (default quiet time 200 ms) watches the {big_name} corpus. One workspace at a "
      "time, the script either drops a `plan.json` with a pending change (to `apply_needed`) or rewrites "
      "the state in place with one instance tainted (to `failed`), then polls "
      "`/api/v1/workspaces/{id}` every 2 ms until the new status shows. The time runs from just before "
      "the write to the first answer with the new status.\n")
    w("| change | n | p50 | p99 |")
    w("|---|---|---|---|")
    for kind, x in lat["by_kind"].items():
        w(f"| {kind} | {x['n']} | {ms(x['p50'])} | {ms(x['p99'])} |")
    w(f"| all | {lat['n']} | {ms(lat['p50'])} | {ms(lat['p99'])} (max {ms(lat['max'])}, min {ms(lat['min'])}) |")
    stall = s.get("history_stall_ms")
    if stall:
        w(f"\nDuring these changes another connection held the history database's write lock for {stall} ms "
          "once a second (`--history-stall`), as a slow `fsync` holds a commit back.")
    w("")
    if after_latency:
        w(after_latency)
    w(f"## 4. `/metrics` at {big['workspaces']:,} workspaces\n")
    sc = s["scrape"]
    gz = s.get("scrape_gzip")
    w(f"{sc['samples']:,} samples ({sc['status_series']:,} `iacwatch_workspace_status` series), "
      f"{size(sc['bytes'])} of text. Time from request to last byte on loopback, one client, after two "
      f"warm-up scrapes: median **{ms(sc['median'])}**, p90 {ms(sc['p90'])}, max {ms(sc['max'])}.\n")
    if gz:
        w(f"With `Accept-Encoding: gzip` (as Prometheus asks), scraped interleaved with the plain ones: "
          f"{size(gz['bytes'])} on the wire, median **{ms(gz['median'])}** "
          f"({ratio(gz['median'], sc['median']):.2f}x plain), p90 {ms(gz['p90'])}, max {ms(gz['max'])}.\n")

    w(f"## 5. Memory and idle CPU of `serve` ({big['workspaces']:,} workspaces)\n")
    w(f"- Ready (first full scan done, `/readyz` 200) {secs(s['ready_after'])} after start.")
    w(f"- RSS after the first scan: {mib(s['after_scan'].get('VmRSS', 0))}; at the end of the run: "
      f"{mib(s['end'].get('VmRSS', 0))}.")
    w(f"- Peak RSS (`VmHWM`) over the whole run: **{mib(peak)}**; the largest file is {mib(largest)}, "
      f"so the target is {mib(rss_limit)}.")
    w(f"- Idle CPU, from `/proc/PID/stat` (utime + stime) over {s['idle_seconds']:.0f} s with no change: "
      f"**{s['idle_cpu_pct']:.3f}%** of one core (CPUs {s['idle_quiet'] * 100:.0f}% idle before).\n")

    return out


def render_serve(r):
    """`bench/run --serve-only`: the daemon's targets and sections alone."""
    m, s = r["machine"], r["serve"]
    big_name = next(iter(r["corpora"]))
    big = r["corpora"][big_name]
    out = ["# Performance of `serve`\n",
           f"Written by `bench/run --serve-only{' --quick' if r['quick'] else ''}` on {m['date']} at commit "
           f"`{m['commit']}` (binary `{r.get('bin', 'target/release/iacwatch')}`), {m['cores']} cores ({m['cpu']}); "
           "the machine is shared. Only the daemon's sections of docs/performance.md.\n",
           "## Targets\n", "| target | measured | |", "|---|---|---|"]
    out += [f"| {name} | {value} | {verdict(ok)} |" for name, value, ok in serve_targets(s, big)]
    out.append("")
    out += serve_sections(s, big_name, big)
    out.append(f"---\nThe run took {r['elapsed'] / 60:.1f} minutes.")
    return "\n".join(out) + "\n"


def _ns(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.1f} µs"


def _seconds(text):
    text = text.strip()
    try:
        if text.endswith("ms"):
            return float(text[:-2]) / 1000
        if text.endswith("µs"):
            return float(text[:-2]) / 1e6
        if text.endswith("s"):
            return float(text[:-1])
    except ValueError:
        pass
    return float("inf")
