"""Reads the criterion results of `cargo bench -p discreet-benches --bench scaling` and
prints BENCHMARKS.md's scaling tables (Markdown) and draws benches/scaling/scaling.png.

    cargo bench -p discreet-benches --bench scaling
    python3 benches/scaling/plot.py            # needs matplotlib (pip install matplotlib)
"""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parents[2]
criterion = root / "target" / "criterion"

GROUPS = [
    ("scaling-fields", "populated fields in the profile", "fields"),
    ("scaling-batch", "profiles in one BatchGetProfiles response", "profiles"),
    ("scaling-policy", "purposes in the policy", "purposes"),
]


def estimate(group, function, param):
    path = criterion / group / function / str(param) / "new" / "estimates.json"
    data = json.loads(path.read_text())
    return data["mean"]["point_estimate"]  # nanoseconds


def series(group):
    params = sorted(
        int(p.name) for p in (criterion / group / "rewrite").iterdir() if p.name.isdigit()
    )
    return [(n, estimate(group, "prost_decode", n), estimate(group, "rewrite", n)) for n in params]


def fmt_ns(ns):
    return f"{ns / 1000:,.1f} µs" if ns >= 1000 else f"{ns:,.0f} ns"


data = {g: series(g) for g, _, _ in GROUPS}
for group, title, unit in GROUPS:
    print(f"\n**{title}**\n")
    # Per unit for the sizes of the message; the policy's size should not matter at all.
    per = unit != "purposes"
    print(f"| {unit} | prost decode | rewrite (enforce) | rewrite / decode |"
          + (f" rewrite per {unit[:-1]} |" if per else ""))
    print("|---:|---:|---:|---:|" + ("---:|" if per else ""))
    for n, decode, rewrite in data[group]:
        print(f"| {n:,} | {fmt_ns(decode)} | {fmt_ns(rewrite)} | {rewrite / decode:.2f}x |"
              + (f" {fmt_ns(rewrite / n)} |" if per else ""))

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("matplotlib is not installed: tables printed, no plot drawn")

fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
for ax, (group, title, unit) in zip(axes, GROUPS):
    ns = [n for n, _, _ in data[group]]
    ax.plot(ns, [d / 1000 for _, d, _ in data[group]], "o--", label="prost decode (baseline)")
    ax.plot(ns, [r / 1000 for _, _, r in data[group]], "o-", label="Discreet rewrite")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(title)
    ax.set_ylabel("µs per call")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
axes[2].set_ylim(0.1, 1000)
fig.suptitle("Enforcement cost grows with the bytes, not with the policy (same run, criterion means)")
fig.tight_layout()
out = root / "benches" / "scaling" / "scaling.png"
fig.savefig(out, dpi=110)
print(f"\nplot: {out.relative_to(root)}")
