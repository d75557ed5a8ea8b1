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
# One line per build, in the order the CSV first names them.
builds = list(dict.fromkeys(r["build"] for r in rows))
ticks = sorted({int(r["clusters"]) for r in rows})

panels = [
    ("cold start to all Ready (s)", "cold_start_s", 120),
    ("operator RSS at rest (MiB)", "idle_rss_mib", 300),
    ("idle CPU (% of one core)", "idle_cpu_pct", 5),
    ("one workspace's change, 50 clusters, 5 at a time (s)", "change_s", None),
]
fig, axes = plt.subplots(1, len(panels), figsize=(16, 3.8))
for ax, (title, key, goal) in zip(axes, panels):
    for build in builds:
        mine = [r for r in rows if r["build"] == build]
        ax.plot(
            [int(r["clusters"]) for r in mine],
            [float(r[key]) for r in mine],
            marker="o" if len(mine) > 1 else "*",
            markersize=6 if len(mine) > 1 else 12,
            label=build,
        )
    if goal is not None:
        ax.axhline(goal, color="red", linestyle="--", linewidth=1, label=f"goal at 1,000: {goal}")
    ax.legend(loc="upper left", fontsize=6)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("KommanderClusters (x 2 AppDeployments)", fontsize=8)
    ax.set_xticks(ticks)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(HERE / "scaling.svg")
print(f"wrote {HERE / 'scaling.svg'}")
