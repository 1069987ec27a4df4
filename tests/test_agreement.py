"""How two configs of a table rank the motifs both trained, and where a named motif ranks in each."""

from __future__ import annotations

import subprocess
import sys

from dish.motifs.sigmoid_slope import SigmoidSlope
from dish.report.agreement import agreement, scores_by_config
from dish.store.csv_store import GroundTruthStore


def test_two_configs_are_compared_on_the_motifs_both_trained(tmp_path):
    store = tmp_path / "gt.csv"
    rows = [("a", 1.0, 0.1), ("a", 2.0, 0.2), ("a", 4.0, 0.3), ("b", 1.0, 0.1), ("b", 2.0, 0.3), ("b", 4.0, 0.2),
            ("b", 8.0, 0.9)]
    GroundTruthStore(store, SigmoidSlope).append([
        {"motif_kind": "sigmoid_slope", "motif_key": SigmoidSlope(s).key, "slope": s, "status": "ok", "val_loss": v,
         "config_hash": h} for h, s, v in rows])
    kind, tables = scores_by_config(store, "val_loss")
    assert kind is SigmoidSlope and {h: len(t) for h, t in tables.items()} == {"a": 3, "b": 4}
    common, spearman, kendall = agreement(tables["a"], tables["b"])
    assert common == 3 and abs(spearman - 0.5) < 1e-5 and abs(kendall - 1 / 3) < 1e-5
    done = subprocess.run([sys.executable, "-m", "dish.report.agreement", str(store), "--rank-of", "slope=2.0"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["config a: 3 motifs; rank of slope=2.0 2",
                                        "config b: 4 motifs; rank of slope=2.0 3",
                                        "a vs b: 3 motifs in both, Spearman 0.500, Kendall 0.333"]
    reference = tmp_path / "benchmark.csv"
    reference.write_text("slope,test_loss\n1.0,0.5\n2.0,0.4\n4.0,0.3\n")  # lower is better: slope 4 is best
    done = subprocess.run([sys.executable, "-m", "dish.report.agreement", str(store), "--reference", str(reference),
                           "--reference-score", "test_loss"], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-2:] == [
        f"a vs {reference} (test_loss): 3 motifs in both, Spearman -1.000, Kendall -1.000",
        f"b vs {reference} (test_loss): 3 motifs in both, Spearman -0.500, Kendall -0.333"]
