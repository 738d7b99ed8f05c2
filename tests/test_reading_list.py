"""The reading list: `pytest -m paper` runs the worked examples of the paper's claims, in seconds.

The `paper` marker (pytest.ini) sits on the whole of test_losses.py, test_cyclegan.py and
test_classic_mistakes.py, and on single tests in test_data.py (the image pool, the unpaired
pairing) and test_train.py (the two steps). Whole runs of the command line, subprocesses, file
safety and the speed layers are left out: they are tooling, not the paper.
"""
import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READING = {  # file: the tests in it that the marker must select (None: every test)
    "tests/test_losses.py": None,
    "tests/test_cyclegan.py": None,
    "tests/test_classic_mistakes.py": None,
    "tests/test_data.py": ("test_pool_", "test_dataset_pairs_each_x_with_a_random_y"),
    "tests/test_train.py": ("test_learning_rate_", "test_generator_step_",
                            "test_discriminator_step_"),
}


def collect(*flags):
    """{file: {test function names}} that pytest collects with these flags, in a subprocess."""
    command = [sys.executable, "-m", "pytest", "--collect-only", "-o", "addopts=", "-q",
               "-p", "no:cacheprovider", *flags]  # addopts= so that -q lists each test
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    found = {}
    for line in done.stdout.splitlines():
        if "::" in line:  # tests/test_losses.py::test_cycle_loss_is_mean_absolute_difference
            path, name = line.split("::")[:2]
            found.setdefault(path, set()).add(name.split("[")[0])  # parameters dropped
    return found


def functions_of(path):
    """{name: source} of every test function in a test file."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        source = f.read()
    return {node.name: ast.get_source_segment(source, node) for node in ast.parse(source).body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_paper_marker_selects_the_worked_examples_and_no_tooling():
    selected = collect("-m", "paper")
    assert set(selected) == set(READING), (
        f"pytest -m paper selects tests from {sorted(selected)}, expected {sorted(READING)}")
    for path, prefixes in READING.items():
        tests = functions_of(path)
        expected = {t for t in tests if prefixes is None or t.startswith(prefixes)}
        assert selected[path] == expected, (
            f"{path}: the marker selects {sorted(selected[path] - expected)} too many and "
            f"misses {sorted(expected - selected[path])}")
        slow = [t for t in selected[path] if "subprocess" in tests[t] or "run_bench" in tests[t]]
        assert not slow, f"{path}: {slow} start a process: not for the reading list"
