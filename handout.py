"""Not the paper: a student copy of this repository for one assignment of docs/assignments.md.

`python handout.py N --out DIR`: the functions assignment N names keep their signature and
docstring, and their body becomes `raise NotImplementedError` with a pointer to the paper's
section; files that would give the answer away stay out; there is no git history; DIR/README.md
says what to implement and which tests grade it. tests/test_handout.py checks every assignment.
"""
import argparse
import ast
import os
import re
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.abspath(__file__))

# Per assignment: its title, the functions to blank (module, name, where the paper defines it),
# and the tests that grade them. Each grading test fails in the handout until the work is done.
ASSIGNMENTS = {
    1: ("The three losses", [
        ("losses", "lsgan_d_loss", "Sec. 4, appendix 7.1"),
        ("losses", "lsgan_g_loss", "Sec. 4"),
        ("losses", "cycle_loss", "Eq. 2, Sec. 3.2"),
        ("losses", "identity_loss", "Sec. 5.2"),
        ("losses", "generator_objective", "Eq. 3, Sec. 5.2"),
    ], ["tests/test_losses.py",
        "tests/test_train.py::test_generator_step_wires_each_network_to_its_domain",
        "tests/test_train.py::test_generator_step_leaves_the_discriminators_untouched",
        "tests/test_train.py::test_discriminator_step_leaves_the_generators_untouched",
        "tests/test_classic_mistakes.py::test_generator_step_asks_D_Y_about_G_x_and_D_X_about_F_y",
        "tests/test_classic_mistakes.py::test_generator_losses_reach_back_into_G_and_F",
        "tests/test_classic_mistakes.py::"
        "test_every_objective_flag_reaches_the_loss_the_generator_step_minimizes",
        "tests/test_classic_mistakes.py::"
        "test_discriminator_step_by_value_halved_once_with_each_domains_pool"]),
    2: ("The PatchGAN and its receptive field", [
        ("cyclegan", "receptive_field", "Sec. 4, appendix 7.2"),
    ], ["tests/test_cyclegan.py::test_discriminator_patch_is_70x70",
        "tests/test_cyclegan.py::test_patch_size_follows_the_number_of_layers"]),
    3: ("The image pool", [
        ("data", "ImagePool.query", "Sec. 4"),
    ], ["tests/test_data.py::test_pool_stores_and_returns_the_first_50_fakes",
        "tests/test_data.py::test_pool_when_full_swaps_half_the_time_seeded",
        "tests/test_data.py::test_pool_returns_an_old_fake_about_half_the_time",
        "tests/test_data.py::test_pool_stores_detached_fakes",
        "tests/test_data.py::test_pool_state_round_trip_continues_identically"]),
    4: ("The ablation study on the toy domains", [
        ("losses", "generator_objective", "Eq. 3, Sec. 5.1, Table 4"),
    ], ["tests/test_losses.py::test_table4_ablations_drop_the_right_terms",
        "tests/test_losses.py::test_full_objective_is_eq3_plus_half_lambda_identity",
        "tests/test_losses.py::test_objective_without_identity_is_plain_eq3",
        "tests/test_classic_mistakes.py::"
        "test_every_objective_flag_reaches_the_loss_the_generator_step_minimizes"]),
    5: ("The identity loss and colour preservation", [
        ("losses", "identity_loss", "Sec. 5.2"),
        ("train", "generator_step", "Eq. 3, Sec. 5.2"),
    ], ["tests/test_losses.py::test_identity_loss_is_mean_absolute_difference",
        "tests/test_losses.py::test_full_objective_is_eq3_plus_half_lambda_identity",
        "tests/test_train.py::test_generator_step_wires_each_network_to_its_domain",
        "tests/test_train.py::test_generator_step_leaves_the_discriminators_untouched",
        "tests/test_classic_mistakes.py::test_generator_step_asks_D_Y_about_G_x_and_D_X_about_F_y",
        "tests/test_classic_mistakes.py::test_generator_losses_reach_back_into_G_and_F",
        "tests/test_classic_mistakes.py::"
        "test_every_objective_flag_reaches_the_loss_the_generator_step_minimizes"]),
    6: ("A real dataset on a GPU, and what fails", [], []),
}

# Left out of every handout, and why: each would give an answer away or fail without it.
LEFT_OUT = {
    "bench.py": "its reference step computes the training step a second way, line for line",
    "handout.py": "for teachers",
    "tests/test_handout.py": "tests handout.py, which stays with the teacher",
    "tests/test_speed.py": "compares train.py's step with bench.py's reference step",
    "tests/test_docs.py": "checks the teacher's README and docs, which the handout replaces",
    "docs/ablation.md": "the measured results of Assignment 4",
    "docs/assignments.md": "replaced by docs/assignment.md: one assignment, no teacher notes",
}


def files_to_copy():
    """The repository files a handout starts from (relative paths), minus LEFT_OUT: of docs/,
    paper.md and the pictures it shows. The other pictures show results: ablation.md's, the
    reference run's."""
    top = [f for f in os.listdir(ROOT) if f.endswith(".py")]
    top += [f for f in ("requirements.txt", "pytest.ini", ".gitignore") if os.path.exists(
        os.path.join(ROOT, f))]
    tests = [f"tests/{f}" for f in os.listdir(os.path.join(ROOT, "tests")) if f.endswith(".py")]
    with open(os.path.join(ROOT, "docs", "paper.md"), encoding="utf-8") as f:
        pictures = re.findall(r"\]\(([^)]+\.(?:png|svg|jpg))\)", f.read())  # ![...](img/a.png)
    docs = ["docs/paper.md", "docs/example.py"] + [f"docs/{p}" for p in pictures]
    return sorted(f for f in top + tests + docs if f not in LEFT_OUT)


def blank(source, name, message):
    """The source with function `name` ("f" or "Class.f") reduced to its signature, docstring
    and `raise NotImplementedError(message)`."""
    scope = ast.parse(source)
    for part in name.split("."):
        found = [n for n in scope.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                 and n.name == part]
        if not found:
            raise ValueError(f"no {name} to blank: was it renamed? Update ASSIGNMENTS in "
                             "handout.py and docs/assignments.md")
        scope = found[0]
    body = scope.body
    has_doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None),
                                                           ast.Constant)
    start = body[0].end_lineno + 1 if has_doc else body[0].lineno  # first line replaced, from 1
    lines = source.splitlines(keepends=True)
    indent = " " * body[0].col_offset
    stub = f"{indent}raise NotImplementedError(\n{indent}    {message!r})\n"
    return "".join(lines[:start - 1]) + stub + "".join(lines[scope.end_lineno:])


def student_assignment(n):
    """docs/assignment.md: the page's notes for everyone, then assignment n alone."""
    with open(os.path.join(ROOT, "docs", "assignments.md"), encoding="utf-8") as f:
        page = f.read()
    notes = [p for p in page.split("\n\n") if p.startswith(("**About the toy runs.**",
                                                             "**Where to run things.**"))]
    m = re.search(rf"^## Assignment {n}:.*?(?=^---|^## )", page, re.M | re.S)
    if not m:
        raise ValueError(f"docs/assignments.md has no section '## Assignment {n}:'")
    return f"# Assignment {n}\n\n" + "\n\n".join(notes) + "\n\n" + m.group(0).rstrip() + "\n"


def deviations():
    """The README's list of deviations from the paper's text (the questions refer to it)."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        m = re.search(r"^## Deviations from the paper's text\n.*?(?=^## |\Z)", f.read(),
                      re.M | re.S)
    if not m:
        raise ValueError("README.md has no section '## Deviations from the paper's text'")
    return m.group(0).rstrip()


def student_readme(n):
    title, functions, graded = ASSIGNMENTS[n]
    todo = "\n".join(f"- `{module}.{name}` in `{module}.py` ({where})"
                     for module, name, where in functions)
    lines = [f"# CycleGAN, assignment {n}: {title}", "",
             "A from-scratch PyTorch CycleGAN (Zhu et al., arXiv:1703.10593v7), handed out for",
             "one assignment. The task and its questions are in `docs/assignment.md`;",
             "`docs/paper.md` reads the paper beside the code.", ""]
    if functions:
        lines += ["## What to implement", "", "Each of these raises NotImplementedError now; "
                  "its docstring says", "what it is in the paper's terms.", "", todo, ""]
    lines += ["## Commands", "", "Run them in this folder (the one with `train.py`), and run "
              "any Python snippet", "from here too.", "", "```bash",
              "pip install torch==2.13.0 && pip install -r requirements.txt   # CPU build"]
    if graded:
        lines += ["# the grading tests: they fail until the functions above are right",
                  "pytest " + " \\\n    ".join(graded)]
    lines += ["python train.py                # trains on the toy domains (about a minute on a "
              "CPU)", "```", "", deviations(), ""]
    return "\n".join(lines)


def make_handout(n, out):
    """Write the student copy of assignment n into the new folder `out`."""
    if n not in ASSIGNMENTS:
        raise ValueError(f"no assignment {n}: choose one of {sorted(ASSIGNMENTS)}")
    if os.path.exists(out) and os.listdir(out):
        raise FileExistsError(f"{out} exists and is not empty: pick a new --out")
    title, functions, graded = ASSIGNMENTS[n]
    part = tempfile.mkdtemp(prefix=".handout-", dir=os.path.dirname(os.path.abspath(out)))
    try:  # written aside, then renamed: an error leaves no half-written handout
        for rel in files_to_copy():
            os.makedirs(os.path.join(part, os.path.dirname(rel)), exist_ok=True)
            shutil.copyfile(os.path.join(ROOT, rel), os.path.join(part, rel))
        for module, name, where in sorted(functions, key=lambda f: f[0]):
            path = os.path.join(part, module + ".py")
            with open(path, encoding="utf-8") as f:
                source = f.read()
            message = f"Assignment {n}: write {name} ({where}), see docs/assignment.md"
            with open(path, "w", encoding="utf-8") as f:
                f.write(blank(source, name, message))
        paper = os.path.join(part, "docs", "paper.md")
        with open(paper, encoding="utf-8") as f:  # drop the link to the left-out ablation page
            text = re.sub(r"\s*[A-Z][^.]*\[[^\]]*\]\(ablation\.md\)\.", "", f.read())
        with open(paper, "w", encoding="utf-8") as f:
            f.write(text)
        with open(os.path.join(part, "docs", "assignment.md"), "w", encoding="utf-8") as f:
            f.write(student_assignment(n))
        with open(os.path.join(part, "README.md"), "w", encoding="utf-8") as f:
            f.write(student_readme(n))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(part, 0o777 & ~umask)  # mkdtemp's 0700 would share nothing: 0755 under umask 022
        if os.path.exists(out):
            os.rmdir(out)
        os.replace(part, out)
    finally:
        shutil.rmtree(part, ignore_errors=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("assignment", type=int, help="the assignment's number in docs/assignments.md")
    p.add_argument("--out", default=None, help="a new folder (default handouts/assignment_N)")
    args = p.parse_args(argv)
    out = args.out or os.path.join("handouts", f"assignment_{args.assignment}")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        make_handout(args.assignment, out)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    title, functions, _ = ASSIGNMENTS[args.assignment]
    blanked = f"{len(functions)} function{'s' * (len(functions) != 1)} blanked"
    print(f"assignment {args.assignment} ({title}): {blanked}, "
          f"written to {out}/ (see {out}/README.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
