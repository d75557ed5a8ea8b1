"""Draw docs/scaling.svg from docs/scaling.csv (the figures `make bench-scale` printed).

    python3 -m pip install matplotlib && python3 docs/plot_scaling.py
"""

import csv
import pathlib

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = pathlib.Path(__file__).parent
rows = list(csv.DictReader(open(HERE / "scaling.csv")))
curve = [r for r in rows if r["render_cache"] == "no"]
cached = [r for r in rows if r["render_cache"] == "yes"]
n = [int(r["clusters"]) for r in curve]

panels = [
    ("cold start to all Ready (s)", "cold_start_s", 120),
    ("operator RSS at rest (MiB)", "idle_rss_mib", 300),
    ("idle CPU (% of one core)", "idle_cpu_pct", 5),
    ("one workspace's change, 50 clusters, 5 at a time (s)", "change_s", None),
]
fig, axes = plt.subplots(1, len(panels), figsize=(16, 3.6))
for ax, (title, key, goal) in zip(axes, panels):
    ax.plot(n, [float(r[key]) for r in curve], marker="o", label="before the render cache")
    ax.plot(
        [int(r["clusters"]) for r in cached],
        [float(r[key]) for r in cached],
        marker="*",
        markersize=12,
        linestyle="none",
        label="with it",
    )
    if goal is not None:
        ax.axhline(goal, color="red", linestyle="--", linewidth=1, label=f"goal at 1,000: {goal}")
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("KommanderClusters (x 2 AppDeployments)", fontsize=8)
    ax.set_xticks(n)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(HERE / "scaling.svg")
print(f"wrote {HERE / 'scaling.svg'}")
