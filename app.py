"""Start the linac QA assistant.

Until the chat UI lands (issue 5), this runs the analysis demo on the embedded
defaults: it writes the demo fleet into the data directory if the store is
empty, imports it, prints the fleet overview (worst first) and writes an
interactive HTML and a PNG control chart for every series that needs a look.
"""

from __future__ import annotations

import sys

from agent.config import ConfigError, get_settings
from agent.qa.demo import write_demo_fleet
from agent.qa.fleet import fleet_table
from agent.qa.selection import load_tables
from agent.qa.store import MeasurementStore, StoreError
from agent.qa.tolerances import ToleranceFileError


def main() -> int:
    """Run the demo; return the process exit code."""
    try:
        settings = get_settings()
        store = MeasurementStore(settings.resolved_database_url)
        if store.counts()["measurement"] == 0:
            paths = write_demo_fleet(settings.data_dir / "demo")
            print(store.import_file(paths["data"]).summary(), file=sys.stderr)
        tables = load_tables(settings)
    except (ConfigError, StoreError, ToleranceFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from agent.qa.analysis import SeriesAnalysis, sort_worst_first

    analyses = [SeriesAnalysis(s, tables).analyze() for s in store.load_series()]
    results = sort_worst_first([a.results_data() for a in analyses])
    print(fleet_table(results))
    charts = settings.data_dir / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    flagged = [a for a in analyses if a.results_data().status != "ok"]
    for a in flagged:
        name = "_".join(p for p in a.series.key if p).replace("/", "-")
        a.plot().write_html(charts / f"{name}.html", include_plotlyjs=True)
        a.save_png(charts / f"{name}.png")
    print(f"\n{len(flagged)} control chart(s) for series needing a look in {charts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
