"""Where a row came from: the config hash covers what the motif's host reads, and the commit is the checkout's
only when dish runs from one."""

from __future__ import annotations

import shutil
import subprocess
import sys

from test_store_tasks import composed_hash

import dish


def test_a_group_the_host_does_not_read_leaves_the_hash_alone():
    """Before, `optimizer` entered the hash of cells, whose language model has its own update rule."""
    cells = composed_hash("ground_truth", ["task=rnn_cell"])
    assert composed_hash("ground_truth", ["task=rnn_cell", "optimizer=sgd"]) == cells
    assert composed_hash("ground_truth", ["task=rnn_cell", "model.lr=5"]) != cells
    slopes = composed_hash("ground_truth", [])
    assert composed_hash("ground_truth", ["optimizer.lr=0.2"]) != slopes  # the MLP host reads it


def commit_seen(package_parent, cwd) -> str:
    probe = "import dish; from dish.core.provenance import git_commit; print(git_commit(), dish.__file__)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(package_parent)})
    return done.stdout.strip()


def test_a_copy_outside_its_checkout_reports_no_commit(tmp_path):
    """Before, a copy inside another repository reported that repository's commit."""
    other = tmp_path / "other_repo"
    other.mkdir()
    git = ["git", "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run([*git, "init", "-q"], cwd=other, check=True)
    (other / "README").write_text("another project\n")
    subprocess.run([*git, "add", "README"], cwd=other, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=other, check=True)
    site = other / "venv" / "site-packages"
    shutil.copytree(dish.__path__[0], site / "dish", ignore=shutil.ignore_patterns("__pycache__"))
    assert commit_seen(site, tmp_path).split() == ["unknown", str(site / "dish" / "__init__.py")]
    outside = tmp_path / "site"
    shutil.copytree(site, outside)
    assert commit_seen(outside, tmp_path).split() == ["unknown", str(outside / "dish" / "__init__.py")]
