"""Checks that the README and docs/ cannot rot silently: every function, test, flag and file that
README.md and docs/*.md name exists, no doc cites a line number, every `Deviation:` note in the code
is in the README's list of deviations, of which docs/paper.md holds a copy, every quotation of the
paper in the docs or in the code's docstrings and comments is the paper's own words
(PAPER_SENTENCES), every measured time or speed names its machine, and the README stays short.

How docs name things, so that these checks can find them (inside backticks):
`cycle_loss()` or `Discriminator(n_layers=2)`: a function or class of a top-level module;
`losses.cycle_loss` or `data.ImagePool.query()`: a module's attribute; `test_...`: a test function
in tests/*.py; `train.py`: a file. `G(x)`, `D_Y(y)`: the paper's networks, not checked.
Any `--flag` must be parsed by the script it follows (`python translate.py --out ...`), or
anywhere else by one of the scripts; `torchrun FLAGS train.py FLAGS` checks the first flags against
torchrun's own parser and the others against train.py's. Math goes in $...$, never in backticks.
"""
import ast
import builtins
import glob
import importlib
import io
import os
import re
import tokenize
import xml.etree.ElementTree as ET

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
DOCS = [README] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
SCRIPTS = sorted(glob.glob(os.path.join(ROOT, "*.py")))  # the top-level modules
MODULES = [os.path.basename(p)[:-3] for p in SCRIPTS]
PAPER_SYMBOLS = {"G", "F", "D", "D_X", "D_Y"}  # the paper's networks, written G(x), D_Y(G(x))
EXTERNAL = {"torch", "nn", "np", "args"}  # `torch.nn.InstanceNorm2d`, `args.lambda_idt`: not ours
DEVIATIONS_HEADING = re.compile(r"^##\s+Deviations from the paper['’]s text\s*$", re.M)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def split_markdown(text):
    """(prose, code): the text outside fenced ``` blocks, and the lines inside them."""
    prose, code, fenced = [], [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            code.append(line)
        else:
            prose.append(line)
    return "\n".join(prose), "\n".join(code)


def inline_code(prose):
    """Every `span` (or ``span``) of the prose, stripped."""
    return [m.group(2).strip() for m in re.finditer(r"(`+)(.+?)\1", prose)]


def top_level_names():
    """{name: module} for every function, class and constant defined at a module's top level."""
    names = {}
    for path, module in zip(SCRIPTS, MODULES):
        for node in ast.parse(read(path)).body:
            targets = [node] if hasattr(node, "name") else getattr(node, "targets", [])
            for t in targets:
                name = getattr(t, "name", None) or getattr(t, "id", None)
                if name:
                    names.setdefault(name, module)
    return names


def names_of_tests():
    """Every test function in tests/*.py (parsed, not imported)."""
    return {node.name for path in glob.glob(os.path.join(ROOT, "tests", "test_*.py"))
            for node in ast.walk(ast.parse(read(path)))
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def script_flags():
    """{script: its --flags}: every string starting with -- passed to a call (add_argument)."""
    flags = {}
    for path in SCRIPTS:
        found = {"--help"}
        for node in ast.walk(ast.parse(read(path))):
            if isinstance(node, ast.Call):
                named = {a.value for a in node.args if isinstance(a, ast.Constant)
                         and isinstance(a.value, str) and re.fullmatch(r"--\w[\w-]*", a.value)}
                on_off = any(k.arg == "action" and ast.unparse(k.value) in (
                    "on_off", "argparse.BooleanOptionalAction") for k in node.keywords)
                found |= named | ({"--no-" + f[2:] for f in named} if on_off else set())
        flags[os.path.basename(path)] = found
    return flags


def resolve(dotted, names):
    """Whether `module.attr.attr` or `Name.attr` is defined, by import and getattr."""
    parts = dotted.split(".")
    if parts[0] in MODULES:
        obj, rest = importlib.import_module(parts[0]), parts[1:]
    elif parts[0] in names:
        obj, rest = importlib.import_module(names[parts[0]]), parts
    else:
        return False
    for part in rest:
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def reference_problems(text, names, tests):
    """What a doc names that does not exist: functions, module attributes, tests, files."""
    prose, code = split_markdown(text)
    problems = []
    for span in inline_code(prose):
        call = re.fullmatch(r"([A-Za-z_]\w*(?:\.\w+)*)\(.*\)", span)
        attr = re.fullmatch(r"([A-Za-z_]\w*(?:\.\w+)+)", span)
        if call:
            dotted = call.group(1)
            first = dotted.split(".")[0]
            checked = first in MODULES or first in names or (
                "." not in dotted and first not in PAPER_SYMBOLS and not hasattr(builtins, first))
            if checked and not resolve(dotted, names):
                problems.append(f"`{span}`: no {dotted} in {', '.join(MODULES)}")
        elif re.fullmatch(r"[\w/.-]+\.(py|md|svg|ini)", span):  # a file of the repository
            if not any(os.path.exists(os.path.join(d, span)) for d in (ROOT, f"{ROOT}/docs")):
                problems.append(f"`{span}`: no such file in the repository")
        elif re.fullmatch(r"[\w/.-]+\.(pt|pth|png|jpg|html|csv|zip|txt)", span):
            continue  # a file that a run writes or downloads
        elif attr and attr.group(1).split(".")[0] not in EXTERNAL:
            if not resolve(attr.group(1), names):
                problems.append(f"`{span}`: no such module attribute")
    for span in inline_code(prose) + code.splitlines():
        for name in re.findall(r"(?<![\w./])(test_\w+)\b(?!\.py)", span):
            if name not in tests:
                problems.append(f"{name}: no test of that name in tests/*.py")
    return problems


def torchrun_flags():
    """The --flags of torchrun, from its own parser (both spellings: --nproc_per_node and
    --nproc-per-node)."""
    from torch.distributed.run import get_args_parser
    return {s for action in get_args_parser()._actions for s in action.option_strings
            if s.startswith("--")}


def command_segments(text):
    """(script, words) for each command of the fenced blocks, split at && ; and |: script is the
    X.py run by python (None for python -m or -c), "torchrun" for torchrun's own flags (the
    X.py it starts and that script's flags follow as a segment of their own), or "other" for
    pytest, pip and the rest."""
    _, code = split_markdown(text)
    code = code.replace("\\\n", " ")  # a command continued on the next line
    for line in code.splitlines():
        for segment in re.split(r"&&|;|\s\|\s", line.split("#")[0]):
            words = segment.split()
            scripts = [w for w in words if w.endswith(".py")]
            if "torchrun" in words:  # torchrun [its flags] train.py [train.py's flags]
                start = words.index("torchrun") + 1
                end = words.index(scripts[0], start) if scripts else len(words)
                yield "torchrun", words[start:end]
                if scripts:
                    yield os.path.basename(scripts[0]), words[end + 1:]
            elif {"python", "python3"} & set(words):
                start = words.index(scripts[0]) + 1 if scripts else len(words)
                yield (os.path.basename(scripts[0]) if scripts else None), words[start:]
            elif words:
                yield "other", words


def flag_problems(text, flags):
    """--flags that no parser reads: after `python X.py`, X.py's; after torchrun, torchrun's;
    anywhere else, any script's, or torchrun's in a paragraph that names torchrun."""
    problems, everywhere, torchrun = [], set().union(*flags.values()), torchrun_flags()
    for script, words in command_segments(text):
        if script == "other":
            continue  # pytest, pip, git: their own flags
        for flag in sorted({w.split("=")[0] for w in words if w.startswith("--")}):
            if script == "torchrun":
                if flag not in torchrun:
                    problems.append(f"{flag}: torchrun has no such flag")
            elif script not in flags:
                problems.append(f"{flag}: after {script}, which is not a script here")
            elif flag not in flags[script]:
                problems.append(f"{flag}: `python {script}` has no such flag")
    prose, _ = split_markdown(text)
    for paragraph in prose.split("\n\n"):
        for flag in sorted(set(re.findall(r"(?<![\w-])--[A-Za-z](?:[\w-]*\w)?", paragraph))):
            if flag not in everywhere and not (flag in torchrun and "torchrun" in paragraph):
                problems.append(f"{flag}: no script parses it")
    return problems


LINE_NUMBER = re.compile(r"\blines?\s+\d+|\bl\.\s*\d+|(?<![\w-])L\d{2,}\b|#L\d+|\.py:\d+", re.I)


def test_every_function_and_test_named_in_docs_exists():
    assert DOCS, "docs/*.md is missing"
    names, tests = top_level_names(), names_of_tests()
    problems = [f"{os.path.basename(p)}: {e}" for p in DOCS
                for e in reference_problems(read(p), names, tests)]
    assert not problems, "docs name things that do not exist:\n" + "\n".join(problems)


def test_every_flag_in_docs_is_parsed_by_its_script():
    flags = script_flags()
    problems = [f"{os.path.basename(p)}: {e}" for p in DOCS for e in flag_problems(read(p), flags)]
    assert not problems, "docs use flags no parser has:\n" + "\n".join(problems)


def test_docs_cite_functions_never_line_numbers():
    found = [f"{os.path.basename(p)}: {m.group(0)!r}" for p in DOCS
             for m in LINE_NUMBER.finditer(read(p))]
    assert not found, "line numbers rot when code moves; name the function:\n" + "\n".join(found)


def test_links_in_docs_point_to_files_that_exist():
    missing = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"", read(path)):
            target = (target[0] or target[1]).split("#")[0]
            if target and not re.match(r"[a-z]+:", target):
                if not os.path.exists(os.path.join(os.path.dirname(path), target)):
                    missing.append(f"{os.path.basename(path)}: {target}")
    assert not missing, "links to missing files:\n" + "\n".join(missing)


def normalize(text):
    return " ".join(text.replace("`", "").split())


def deviation_notes():
    """(file, text) of each `Deviation:` note of the top-level .py files: a `# Deviation:` comment
    to the end of its line, or a docstring's `Deviation:` to the end of its paragraph."""
    notes = []
    for path in SCRIPTS:
        source, name = read(path), os.path.basename(path)
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT and "Deviation:" in tok.string:
                notes.append((name, normalize(tok.string.split("Deviation:", 1)[1])))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                for part in (ast.get_docstring(node) or "").split("Deviation:")[1:]:
                    notes.append((name, normalize(part.split("\n\n")[0])))
    return notes


def section(path, what):
    """The text under '## Deviations from the paper's text' in a Markdown file."""
    if not os.path.exists(path):
        pytest.fail(f"{what} is missing: it needs a section \"## Deviations from the paper's "
                    f"text\" listing each Deviation: note of the code")
    text = read(path)
    m = DEVIATIONS_HEADING.search(text)
    if not m:
        pytest.fail(f"{what} has no section \"## Deviations from the paper's text\"")
    end = re.search(r"^#{1,2}\s", text[m.end():], re.M)
    return text[m.end():m.end() + end.start()] if end else text[m.end():]


def list_items(markdown):
    """The items of a Markdown list (-, * or 1.), each with its wrapped lines, normalized."""
    items = []
    for line in markdown.splitlines():
        item = re.match(r"\s*(?:[-*]|\d+\.)\s+(.*)", line)
        if item:
            items.append(item.group(1))
        elif line.strip() and line.startswith((" ", "\t")) and items:
            items[-1] += " " + line
        elif not line.strip() and items and items[-1] is not None:
            items.append(None)  # a blank line ends the item
    return [normalize(i) for i in items if i is not None]


def test_every_deviation_note_in_the_code_is_in_the_readme():
    notes = deviation_notes()
    assert notes, "no Deviation: notes found: the search in the .py files is broken"
    readme = normalize(section(os.path.join(ROOT, "README.md"), "README.md"))
    missing = [f"{name}: {text}" for name, text in notes if text not in readme]
    assert not missing, ("README.md's \"## Deviations from the paper's text\" lacks these notes "
                         "(word for word, as after Deviation: in the code):\n" + "\n".join(missing))


def test_paper_md_holds_the_readme_list_of_deviations():
    readme = list_items(section(os.path.join(ROOT, "README.md"), "README.md"))
    paper = list_items(section(os.path.join(ROOT, "docs", "paper.md"), "docs/paper.md"))
    assert readme, "README.md's deviations section has no list items"
    assert paper == readme, ("docs/paper.md's list of deviations differs from README.md's; copy "
                             "it again.\nREADME.md:\n" + "\n".join(readme)
                             + "\ndocs/paper.md:\n" + "\n".join(paper))


def test_architecture_svg_shows_the_appendix_layer_codes():
    svg = ET.parse(os.path.join(ROOT, "docs", "architecture.svg")).getroot()  # well-formed XML
    text = " ".join(" ".join(svg.itertext()).split())
    for code in ("c7s1-64", "d128", "d256", "R256", "u128", "u64", "c7s1-3",
                 "C64", "C128", "C256", "C512", "30x30", "70x70", "G: X → Y", "F: Y → X", "D_X",
                 "D_Y"):
        assert code in text, f"docs/architecture.svg does not show {code}"


def test_the_checks_catch_a_rotten_doc():
    # a doc naming a function, a test, a flag and a line that do not exist
    rotten = ("Blank `cycle_loss()` and `lossess.cycle_loss` and `no_such_helper()`; check with\n"
              "`test_cycle_loss_is_mean_absolute_difference` and `test_no_such_claim`.\n"
              "`G(x)` and `D_Y(G(x))` are the paper's. See line 42 of losses.py, or L120.\n"
              "```\npython train.py --lambda_cyc 10 --lamda_idt 0\npytest -x --durations 5\n```\n"
              "Pass `--no_such_flag` to turn it off.\n")
    problems = reference_problems(rotten, top_level_names(), names_of_tests())
    assert problems == ["`lossess.cycle_loss`: no such module attribute",
                        "`no_such_helper()`: no no_such_helper in " + ", ".join(MODULES),
                        "test_no_such_claim: no test of that name in tests/*.py"]
    assert sorted(flag_problems(rotten, script_flags())) == [
        "--lamda_idt: `python train.py` has no such flag", "--no_such_flag: no script parses it"]
    assert [m.group(0) for m in LINE_NUMBER.finditer(rotten)] == ["line 42", "L120"]


def test_torchrun_flags_are_torchruns_and_the_scripts_flags_are_the_scripts():
    # torchrun's own flags (either spelling) go to torchrun's parser; train.py's to train.py's
    doc = ("```bash\nTORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 torchrun --nnodes 2 \\\n"
           "    --nproc_per_node 4 --rdzv-backend c10d --max-restarts 3 --max_retries 3 \\\n"
           "    train.py --dataroot horse2zebra --batch_size 8 --nproc_per_node 4\n```\n"
           "With `--max-restarts`, torchrun restarts every process.\n\n"
           "Pass `--standalone` for one machine.\n")
    assert flag_problems(doc, script_flags()) == [
        "--max_retries: torchrun has no such flag",
        "--nproc_per_node: `python train.py` has no such flag",
        "--standalone: no script parses it"]  # a torchrun flag, but no torchrun in its paragraph


# A measured time or speed: a number with a unit of time (5 s, 6.2 ms, 29 minutes, ...) or of
# speed (0.21 s/it, 257 GFLOP/s, 502 images/s), or a speed ratio such as 1.14x. Not 64x64, 0.4 GB,
# 3 residual blocks or "all 1s".
TIME_FIGURE = re.compile(
    r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:\s*(?:s/it|it/s|[GT]FLOP/s|images/s|ms|seconds?|min|minutes?"
    r"|hours?|days?)|\s+[sh])(?![\w/])|(?<![\w.])\d+\.\d+x(?!\w)")
# What names a machine: a kind of processor or accelerator, or its number of cores
MACHINE = re.compile(r"\b(?:CPU|GPU|Xeon|EPYC|Ryzen|Core i\d|Apple M\d|[AHV]100|T4|cores?)\b|"
                     r"\d-core\b")


def paragraphs_with_their_tables(text):
    """The text in groups: a heading alone; or a paragraph with the tables and code blocks that
    follow it (the paragraph that introduces a table or a printed output says what it shows)."""
    groups, block, fenced = [], [], False

    def end_block():
        if block:
            first = block[0].lstrip()
            if first.startswith(("|", "```")) and groups and not groups[-1].startswith("#"):
                groups[-1] += "\n" + "\n".join(block)  # a table or code block joins its paragraph
            else:
                groups.append("\n".join(block))
            block.clear()

    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if not fenced:
                end_block()
            block.append(line)
            fenced = not fenced
            if not fenced:
                end_block()
        elif fenced:
            block.append(line)
        elif not line.strip() or line.startswith("#") or (
                block and line.lstrip().startswith("|") != block[-1].lstrip().startswith("|")):
            end_block()  # a blank line, a heading, or a table starting or ending
            if line.strip():
                block.append(line)
                if line.startswith("#"):
                    end_block()
        else:
            block.append(line)
    end_block()
    return groups


def figures_without_a_machine(text):
    """Each time or speed in a paragraph (with its tables) that names no machine."""
    return [m.group(0) for group in paragraphs_with_their_tables(text)
            if not MACHINE.search(group) for m in TIME_FIGURE.finditer(group)]


def test_every_time_and_speed_names_its_machine():
    problems = [f"{os.path.basename(p)}: {figure}" for p in DOCS
                for figure in figures_without_a_machine(read(p))]
    assert not problems, ("a time or speed means nothing without the machine it was measured on: "
                          "name it (2-core Intel Xeon CPU, one H100 GPU, ...) in the same "
                          "paragraph, or in the paragraph before the table:\n"
                          + "\n".join(problems))


def test_the_machine_check_catches_a_figure_without_its_machine():
    rotten = ("One epoch takes 2.5 hours, and `--compile` adds 64 s.\n\n"  # no machine
              "On a 2-core Xeon CPU, an epoch takes 2.5 hours.\n\n"
              "The step, side by side, at 64x64 and 0.4 GB:\n\n"  # a table with no machine
              "| crop | train.py | vs the authors' |\n| --- | --- | --- |\n"
              "| 128 | 1.822 s | 1.14x |\n"
              "\n## 1 s/it on one H100 GPU\n\n"  # a heading names its own machine
              "Its log ends:\n\n```\nepoch 1/200 | 0.21 s/it\n```\n")  # printed, by no machine
    assert figures_without_a_machine(rotten) == ["2.5 hours", "64 s", "1.822 s", "1.14x",
                                                 "0.21 s/it"]
    assert TIME_FIGURE.findall("5 s, 6.2 ms, 502 images/s, 257 GFLOP/s, 29 minutes, 1.08x") == [
        "5 s", "6.2 ms", "502 images/s", "257 GFLOP/s", "29 minutes", "1.08x"]
    assert TIME_FIGURE.findall("64x64 px, 0.4 GB, 3 residual blocks, Sec. 4, all 1s, 4 + 3 epochs"
                               ) == []


def test_readme_is_at_most_180_lines():
    lines = read(README).splitlines()
    assert len(lines) <= 180, (f"README.md has {len(lines)} lines: keep it a reader's first page "
                               "(at most 180) and move long material to a page of docs/")


# The paper's own sentences (arXiv:1703.10593v7), word for word, citation numbers left out. A
# quotation in docs/ or in a top-level .py file's docstrings and comments must be a piece of one.
PAPER_SENTENCES = {
    "Sec. 4": [
        "This network contains three convolutions, several residual blocks, two "
        "fractionally-strided convolutions with stride 1/2, and one convolution that maps "
        "features to RGB.",
        "We use 6 blocks for 128 x 128 images and 9 blocks for 256 x 256 and higher-resolution "
        "training images.",
        "For the discriminator networks we use 70 x 70 PatchGANs, which aim to classify whether "
        "70 x 70 overlapping image patches are real or fake.",
        "First, for L_GAN (Equation 1), we replace the negative log likelihood objective by a "
        "least-squares loss.",
        "This loss is more stable during training and generates higher quality results.",
        "Second, to reduce model oscillation, we follow Shrivastava et al.'s strategy and update "
        "the discriminators using a history of generated images rather than the ones produced by "
        "the latest generators.",
        "We keep an image buffer that stores the 50 previously created images.",
        "For all the experiments, we set λ = 10 in Equation 3.",
        "We use the Adam solver with a batch size of 1.",
        "All networks were trained from scratch with a learning rate of 0.0002.",
        "We keep the same learning rate for the first 100 epochs and linearly decay the rate to "
        "zero over the next 100 epochs.",
    ],
    "Sec. 5.1, Table 4": ["Cycle alone", "GAN alone", "GAN + forward cycle loss",
                          "GAN + backward cycle loss"],
    "Sec. 5.2": [
        "Without L_identity, the generator G and F are free to change the tint of input images "
        "when there is no need to.",
    ],
    "appendix 7.1": [
        "In practice, we divide the objective by 2 while optimizing D, which slows down the rate "
        "at which D learns, relative to the rate of G.",
        "We keep the same learning rate for the first 100 epochs and linearly decay the rate to "
        "zero over the next 100 epochs.",
        "Weights are initialized from a Gaussian distribution N(0, 0.02).",
        "The identity mapping loss of weight 0.5λ was used.",
    ],
    "appendix 7.2": [
        "Reflection padding was used to reduce artifacts.",
        "We do not use InstanceNorm for the first C64 layer.",
        "We use leaky ReLUs with a slope of 0.2.",
    ],
}


def normal_text(text):
    """Whitespace, quote marks, x for ×, and LaTeX marks made uniform for comparing wording."""
    for old, new in (("’", "'"), ("×", "x"), ("$", ""), ("\\lambda", "λ"), ("\\frac12", "1/2")):
        text = text.replace(old, new)
    return " ".join(text.split())


CLAIM = re.compile(r"paper|Sec\. \d|[Aa]ppendix|Table \d|Eq\. \d|Fig\. \d")


def quotations(text):
    """Every "..." or “...” of two words or more in a text that claims to quote the paper: six
    words or more, or the paper, a section, table, equation or figure named in the 150
    characters before it (within its paragraph). Normalized."""
    found = []
    for m in re.finditer(r'"([^"\n]*(?:\n[^"\n]*){0,3})"|“([^”]*)”', text):
        q = normal_text(m.group(1) or m.group(2))
        before = text[max(0, m.start() - 150):m.start()].split("\n\n")[-1]
        if len(q.split()) >= 6 or (len(q.split()) >= 2 and CLAIM.search(before)):
            found.append(q)
    return found


def quoted_texts():
    """(where, quotation) for docs/*.md prose (no code) and .py docstrings and comments."""
    out = []
    for path in DOCS:
        prose, _ = split_markdown(read(path))
        prose = re.sub(r"(`+).+?\1", "", prose)  # code spans hold strings, not quotations
        out += [(os.path.basename(path), q) for q in quotations(prose)]
    for path in SCRIPTS:
        source, name = read(path), os.path.basename(path)
        texts = [tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                 if tok.type == tokenize.COMMENT]
        texts += [ast.get_docstring(node) or "" for node in ast.walk(ast.parse(source))
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))]
        out += [(name, q) for text in texts for q in quotations(text)]
    return out


def is_the_papers(quote):
    """Whether a quotation is a piece of one of the paper's sentences (its first letter may
    change case, its last punctuation may go; "..." may leave words out)."""
    sentences = [normal_text(s) for group in PAPER_SENTENCES.values() for s in group]
    pieces = [p.strip(" .,;:") for p in re.split(r"\.\.\.|…", quote) if p.strip(" .,;:")]
    for sentence in sentences:
        at = 0
        for piece in pieces:
            hit = sentence.find(piece[1:], at)
            while hit > 0 and sentence[hit - 1].lower() != piece[0].lower():
                hit = sentence.find(piece[1:], hit + 1)
            if hit <= 0 and not (hit == 0 and len(piece) == 1):
                break
            at = hit + len(piece) - 1
        else:
            return True
    return False


def test_every_quotation_of_the_paper_is_word_for_word():
    found = quoted_texts()
    assert any(where == "data.py" for where, _ in found), "no quotation found: the search broke"
    wrong = [f"{where}: \"{q}\"" for where, q in found
             if not is_the_papers(q)]
    assert not wrong, ("these quotations are not the paper's words (arXiv:1703.10593v7). Quote "
                       "the sentence exactly, add it to PAPER_SENTENCES in tests/test_docs.py "
                       "after checking it against the PDF, or paraphrase without quotation "
                       "marks:\n" + "\n".join(wrong))


def test_the_quotation_check_catches_a_misquote():
    assert is_the_papers("we divide the objective by 2 while optimizing D")
    assert is_the_papers("keep the same learning rate for the first 100 epochs and linearly "
                         "decay the rate to zero over the next 100 epochs")
    assert is_the_papers("We keep an image buffer ... 50 previously created images")
    assert not is_the_papers("to slow down")  # appendix 7.1 says "slows down the rate"
    assert not is_the_papers("linearly to zero over the next 100")  # the words are reordered
    assert not is_the_papers("This network contains two stride-2 convolutions")  # v1-v6 wording
    assert quotations('Sec. 4 says “keep the rate” and "no"') == ["keep the rate"]
    assert quotations('a column name such as "L1 G(x)"') == []  # not a claim to quote the paper
    old_text = 'The paper (appendix 7.1) halves the objective "to slow down" D relative to G.'
    assert [q for q in quotations(old_text) if not is_the_papers(q)] == ["to slow down"]
