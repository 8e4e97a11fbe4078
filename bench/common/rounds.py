"""What the bench/*/report.py scripts share: reading run.sh's per-round measurements (TSV:
name round metric value) and formatting numbers for the markdown tables."""
import collections
import statistics


def fmt(value, digits=0):
    """A table cell: thousands separators, or an en dash for a missing value."""
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


class Rounds:
    """Measurements by name (target or system), metric and round."""

    def __init__(self, tsv_path):
        self.data = collections.defaultdict(lambda: collections.defaultdict(dict))
        with open(tsv_path) as f:
            for line in f:
                name, rnd, metric, value = line.rstrip("\n").split("\t")
                self.data[name][metric][int(rnd)] = float(value) if value else None

    def median(self, name, metric):
        """Median over the rounds that measured it, or None."""
        values = [v for v in self.data[name][metric].values() if v is not None]
        return statistics.median(values) if values else None
