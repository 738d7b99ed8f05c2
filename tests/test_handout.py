"""Worked examples for handout.py: for each assignment, a student copy whose grading tests fail
until the blanked functions are written again, that holds no answer, and has no git history.

The grading tests run in one subprocess (one thread): in each handout as handed out, where every
one of them must fail on NotImplementedError, and in a copy with the reference bodies restored.
"""
import ast
import glob
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import handout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLANKED = [n for n, (_, functions, _) in handout.ASSIGNMENTS.items() if functions]

# The answers of docs/assignments.md's questions, as its notes for the teacher give them: no file
# of any handout may hold one (compared in lower case, with runs of white space as one space).
# Questions left out have no fixed answer, or send the student to read it (Assignment 1's Q1:
# the number in the test's comment).
ANSWERS = {
    1: {"Q2": ["-2a"],
        "Q3": ["0.232", "0.0048", "0.0338", "0.0168", "0.0505"],
        "Q4": ["3072", "3.26", "1.63"],
        "Q5": ["0.047", "0.953"],
        "Q6": ["2.8125"]},
    2: {"Q1": ["9 \\cdot 2^n"],
        "Q2": ["15x15", "16 → 15"],
        "Q3": ["33x33", "143 → 71", "25 → 12"],
        "Q4": ["overlap by 30", "overlap by 126"],
        "Q5": ["all four images"]},
    3: {"Q1": ["a second time", "modified by an inplace operation"],
        "Q3": ["1/100", "0.5 / 50", "25 iterations"]},
    4: {"baselines": ["1.235", "0.285"],  # the toy's, as the runs print them
        "results": ["0.164 / 0.155 / 0.172", "0.118 / 0.129 / 0.143"]},  # docs/ablation.md's
}
# Pictures of an assignment's results (the ablation's translations, a horse2zebra run's).
RESULT_PICTURES = {4: ["docs/img/ablation.png"], 6: ["docs/img/h2z64_*.png"]}


# Runs pytest in several folders in one process, so that torch is imported once: before each
# run it forgets the modules imported from the folders (losses, train, the tests...).
DRIVER = """
import json, os, sys
import pytest
runs, base, path = json.loads(sys.argv[1]), sys.argv[2], list(sys.path)
results = []
for folder, tests in runs:
    for name, module in list(sys.modules.items()):
        if os.path.abspath(getattr(module, "__file__", None) or "/").startswith(base):
            del sys.modules[name]
    os.chdir(folder)
    sys.path[:] = [folder] + path
    outcomes = {}

    class Collect:
        def pytest_runtest_logreport(self, report):
            if report.when == "call" or report.failed:
                outcomes[report.nodeid] = [report.outcome,
                                           "NotImplementedError" in str(report.longrepr)]

    code = pytest.main(["-q", "--tb=no", "-p", "no:cacheprovider", *tests], plugins=[Collect()])
    results.append([int(code), outcomes])
print("RESULTS " + json.dumps(results))
"""


def files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, fs in os.walk(folder) for f in fs)


def texts(folder):
    """{path: text} of every file that reads as UTF-8 (code, pages, .svg, .ini...)."""
    found = {}
    for rel in files(folder):
        try:
            found[rel] = (folder / rel).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            pass  # a picture
    return found


def plain(text):
    return " ".join(text.split()).lower()


@pytest.fixture(scope="module")
def handouts(tmp_path_factory):
    """{n: folder} with the handout of every assignment, written by handout.main."""
    base = tmp_path_factory.mktemp("handouts")
    for n in handout.ASSIGNMENTS:
        assert handout.main([str(n), "--out", str(base / f"a{n}")]) == 0
    return {n: base / f"a{n}" for n in handout.ASSIGNMENTS}


@pytest.fixture(scope="module")
def graded_runs(handouts):
    """{n: (exit status, {test: [outcome, raised NotImplementedError]})} for each blanked
    handout, and "restored": the same for every grading test in handout 1 with the reference
    bodies copied back, after checking that restoring gives the reference code (handout 6)."""
    base = handouts[1].parent
    restored = shutil.copytree(handouts[1], base / "restored")
    reference = handouts[6]  # assignment 6 blanks nothing: the reference code, trimmed the same
    for n in BLANKED:
        for module in {m for m, _, _ in handout.ASSIGNMENTS[n][1]}:
            shutil.copyfile(os.path.join(ROOT, module + ".py"), restored / f"{module}.py")
    for rel in files(reference):
        if rel.endswith(".py"):
            assert (restored / rel).read_bytes() == (reference / rel).read_bytes(), (
                f"{rel} differs from the reference beyond the blanked bodies")
    graded = sorted({t for _, _, tests in handout.ASSIGNMENTS.values() for t in tests})
    runs = [[str(handouts[n]), handout.ASSIGNMENTS[n][2]] for n in BLANKED]
    runs.append([str(restored), graded])
    r = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(runs), str(base)],
                       capture_output=True, text=True, timeout=900,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = [line for line in r.stdout.splitlines() if line.startswith("RESULTS ")]
    assert lines, f"the pytest runs did not finish:\n{(r.stdout + r.stderr)[-3000:]}"
    results = json.loads(lines[-1][len("RESULTS "):])
    return {**dict(zip(BLANKED, results)), "restored": results[-1]}


@pytest.mark.parametrize("n", BLANKED)
def test_every_grading_test_fails_in_the_handout(n, graded_runs):
    _, functions, graded = handout.ASSIGNMENTS[n]
    status, outcomes = graded_runs[n]
    passed = [t for t, (outcome, _) in outcomes.items() if outcome != "failed"]
    other = [t for t, (_, blank) in outcomes.items() if not blank]
    assert status == 1 and outcomes and not passed and not other, (
        f"assignment {n}: with {[f for _, f, _ in functions]} blanked, every grading test must "
        f"fail on NotImplementedError; these did not: {passed + other}")


def test_restored_handouts_pass_their_grading_tests(graded_runs):
    status, outcomes = graded_runs["restored"]
    failed = [t for t, (outcome, _) in outcomes.items() if outcome != "passed"]
    assert status == 0 and outcomes and not failed, (
        f"with the reference bodies back, these grading tests fail: {failed}")


def answer_lines(module, name):
    """The telling code lines of a function's body below its docstring: 30 characters or more
    (comments dropped), and found nowhere else in its module."""
    with open(os.path.join(ROOT, module + ".py"), encoding="utf-8") as f:
        source = f.read()
    scope = ast.parse(source)
    for part in name.split("."):
        scope = next(n for n in scope.body if getattr(n, "name", None) == part)
    lines = source.splitlines()
    body = [line.split("#")[0].strip() for line in lines[scope.body[0].end_lineno:scope.end_lineno]]
    rest = "\n".join(lines[:scope.lineno - 1] + lines[scope.end_lineno:])
    return [line for line in body if len(line) >= 30 and line not in rest]


@pytest.mark.parametrize("n", BLANKED)
def test_no_file_in_the_handout_holds_the_answer(n, handouts):
    folder = handouts[n]
    assert not (folder / ".git").exists(), "the handout must have no git history"
    for rel in ("bench.py", "tests/test_speed.py", "docs/ablation.md", "docs/assignments.md",
                *handout.LEFT_OUT):  # the first four hold answers, whatever LEFT_OUT says
        assert not (folder / rel).exists(), f"{rel} is in the handout: it holds answers"
    code = {rel: text for rel, text in texts(folder).items()
            if rel != "docs/assignment.md"}  # not the task, which says what to write
    with open(os.path.join(ROOT, "docs", "assignments.md"), encoding="utf-8") as f:
        notes = f.read().split("## Notes for the teacher")[1]
    notes = [line for line in notes.splitlines() if len(line) > 40]
    assert notes and not any(line in t for line in notes for t in code.values()), \
        "the notes for the teacher are in the handout"
    for module, name, _ in handout.ASSIGNMENTS[n][1]:
        answer = answer_lines(module, name)
        assert answer, f"{module}.{name}: no answer lines found; the check is broken"
        leaks = [f"{rel}: {line}" for line in answer for rel, text in code.items()
                 if line in text]
        assert not leaks, f"assignment {n}: the handout still holds {module}.{name}'s body:\n" + \
            "\n".join(leaks)


@pytest.mark.parametrize("n", sorted(handout.ASSIGNMENTS))
def test_student_readme_and_page_name_the_work_and_the_commands(n, handouts):
    readme = (handouts[n] / "README.md").read_text(encoding="utf-8")
    page = (handouts[n] / "docs" / "assignment.md").read_text(encoding="utf-8")
    _, functions, graded = handout.ASSIGNMENTS[n]
    assert f"## Assignment {n}:" in page and "## Assignment" not in page.replace(
        f"## Assignment {n}:", ""), "docs/assignment.md must hold this assignment alone"
    assert all(f"`{m}.{f}`" in readme for m, f, _ in functions) and all(t in readme for t in graded)
    assert "python train.py" in readme and "Run them in this folder" in readme
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:  # the questions cite it
        listed = f.read().split("## Deviations from the paper's text")[1].split("\n## ")[0]
    assert listed.strip() and plain(listed) in plain(readme), "the README's deviations are missing"
    with open(os.path.join(ROOT, "docs", "assignments.md"), encoding="utf-8") as f:
        section = f.read().split(f"## Assignment {n}:")[1].split("\n---")[0]
    unnamed = [t for t in graded if "::" in t and t.split("::")[1] not in section]
    assert not unnamed, f"docs/assignments.md's Assignment {n} does not name {unnamed}"


def test_an_existing_folder_or_unknown_assignment_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert handout.main(["1", "--out", str(tmp_path / "taken")]) == 1
    assert handout.main(["9", "--out", str(tmp_path / "new")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {tmp_path / 'taken'} exists and is not empty: pick a new --out",
                   "error: no assignment 9: choose one of [1, 2, 3, 4, 5, 6]"]
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "new").exists() and os.listdir(tmp_path) == ["taken"]


def test_the_answer_table_follows_the_teachers_notes_and_results():
    with open(os.path.join(ROOT, "docs", "assignments.md"), encoding="utf-8") as f:
        sources = f.read().split("## Notes for the teacher")[1]
    with open(os.path.join(ROOT, "docs", "ablation.md"), encoding="utf-8") as f:
        sources += f.read()
    stale = [a for questions in ANSWERS.values() for answers in questions.values()
             for a in answers if plain(a) not in plain(sources)]
    assert not stale, f"in neither the notes for the teacher nor ablation.md: {stale}"


@pytest.mark.parametrize("n", sorted(handout.ASSIGNMENTS))
def test_no_file_of_the_handout_answers_a_question(n, handouts):
    leaks = [f"{rel}: Assignment {a} {q}: {answer!r}"
             for rel, text in texts(handouts[n]).items()
             for a, questions in ANSWERS.items() for q, answers in questions.items()
             for answer in answers if plain(answer) in plain(text)]
    assert not leaks, "the handout answers questions:\n" + "\n".join(leaks)


@pytest.mark.parametrize("n", sorted(handout.ASSIGNMENTS))
def test_every_picture_of_the_handout_is_shown_by_its_reading_and_shows_no_results(n, handouts):
    folder, results = handouts[n], {}
    for a, patterns in RESULT_PICTURES.items():
        for pattern in patterns:
            paths = glob.glob(os.path.join(ROOT, pattern))
            assert paths, f"no {pattern}: update RESULT_PICTURES"
            results.update({pathlib.Path(p).read_bytes(): f"Assignment {a}'s {p}" for p in paths})
    shipped = "\n".join(texts(folder).values())
    for rel in set(files(folder)) - set(texts(folder)):
        assert (folder / rel).read_bytes() not in results, (
            f"{rel} is {results.get((folder / rel).read_bytes())}: it shows the results")
        assert os.path.basename(rel) in shipped, f"{rel}: no file of the handout shows it"


def test_the_handout_can_be_shared_as_it_is(tmp_path, capsys):
    umask = os.umask(0o022)
    try:
        assert handout.main(["2", "--out", str(tmp_path / "a2")]) == 0
    finally:
        os.umask(umask)
    assert "(The PatchGAN and its receptive field): 1 function blanked," in capsys.readouterr().out
    paths = [tmp_path / "a2"] + [pathlib.Path(d, name) for d, subdirs, fs in
                                 os.walk(tmp_path / "a2") for name in subdirs + fs]
    wrong = {str(p): oct(p.stat().st_mode & 0o777) for p in paths  # mkdtemp makes 0o700
             if p.stat().st_mode & 0o777 != (0o755 if p.is_dir() else 0o644)}
    assert not wrong, f"not readable by others (umask 022): {wrong}"
