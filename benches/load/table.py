"""Prints the load benchmark's table (Markdown) from results.tsv, with ratios to nginx and
to direct, and the issue's targets as pass/fail lines. Reads only what run.sh measured."""
import csv
import sys

results, rss_get_kib, calls, spans, denied = sys.argv[1], *map(int, sys.argv[2:6])
rows = list(csv.DictReader(open(results), delimiter="\t"))
by = {(r["scenario"], r["target"]): r for r in rows}


def num(v):
    try:
        return float(v)
    except ValueError:
        return None


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"


print("| scenario | via | req/s | vs nginx | vs direct | p50 µs | p99 µs | p99.9 µs "
      "| CPU µs/req | peak RSS MiB | calls | failed |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    fixed = r["scenario"].endswith("fixed-rate")
    rps = num(r["rps"])
    nginx = by.get((r["scenario"], "nginx"))
    direct = by.get((r["scenario"], "direct"))
    if fixed:
        # At a fixed rate, the comparison is latency: p99 against nginx's and direct's.
        vs_nginx = ratio(num(r["p99_us"]), num(nginx["p99_us"])) + " p99" if nginx else "-"
        vs_direct = ratio(num(r["p99_us"]), num(direct["p99_us"])) + " p99" if direct else "-"
    else:
        vs_nginx = ratio(rps, num(nginx["rps"])) if nginx else "-"
        vs_direct = ratio(rps, num(direct["rps"])) if direct else "-"
    rss = num(r["peak_rss_kib"])
    print(f"| {r['scenario']} | {r['target']} | {rps:,.0f} | {vs_nginx} | {vs_direct} "
          f"| {r['p50_us']} | {r['p99_us']} | {r['p999_us']} | {r['cpu_us_per_req']} "
          f"| {'-' if rss is None else f'{rss / 1024:.1f}'} | {r['requests']} | {r['failed']} |")


def get(scenario, target, col):
    r = by.get((scenario, target))
    return num(r[col]) if r else None


print()
checks = []
d, n = get("get-saturation", "discreet", "rps"), get("get-saturation", "nginx", "rps")
checks.append((f"GetProfile saturation, Discreet / nginx req/s = {ratio(d, n)} (target >= 1.2x)",
               d is not None and n and d / n >= 1.2))
d, n = get("get-fixed-rate", "discreet", "p99_us"), get("get-fixed-rate", "nginx", "p99_us")
if d is not None and n is not None:
    checks.append((f"GetProfile fixed rate, Discreet p99 {d:.0f} us vs nginx p99 {n:.0f} us "
                   "(target <=)", d <= n))
c, f = get("get-cached-token", "discreet", "rps"), get("get-new-token", "discreet", "rps")
if c and f is not None:
    checks.append((f"new consent token per call / same token = {ratio(f, c)} (target >= 0.5x)",
                   f / c >= 0.5))
checks.append((f"Discreet peak RSS after GetProfile saturation = {rss_get_kib / 1024:.1f} MiB "
               f"(target < 32 MiB)", rss_get_kib < 32 * 1024))
checks.append((f"access spans exported {spans} for {calls} calls, {denied} calls refused (every "
               f"call audited; calls h2load reset at the end of a timed run not counted)",
               spans >= calls and denied == 0))
for text, ok in checks:
    print(f"- {'PASS' if ok else 'FAIL'}: {text}")
