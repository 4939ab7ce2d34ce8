"""The command line: fast start-up, usage errors as one line with exit code 2, `list`."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from scribe_tui import __version__
from scribe_tui.cli import build_parser, main

HOLDER = """
import sys
from scribe_tui.runtime.nblock import NotebookLock
NotebookLock(sys.argv[1]).acquire()
print("held", flush=True)
sys.stdin.read()
"""


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "scribe_tui", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_version_and_help_do_not_import_heavy_packages() -> None:
    probe = (
        "import sys; from scribe_tui.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'anthropic', 'textual', 'jupyter_client',"
        " 'mcp') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"scribe-tui {__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["investigate", "   ", "--auto"], "the task is empty"),
        (["investigate", "find it", "--json"], "--json needs --auto"),
        (["investigate", "find it", "--auto", "--max-turns", "0"], "--max-turns must be positive"),
        (["investigate", "find it", "--auto", "--checkpoint-every", "-1"], "--checkpoint-every"),
        (["resume", "nowhere/missing.ipynb", "--auto"], "no such notebook"),
        (["investigate", "find it", "--auto", "--confirm-checkpoints"], "drop --confirm-"),
        (["resume", "run.ipynb", "--auto", "--confirm-checkpoints"], "drop --confirm-"),
        (["investigate", "find it", "--auto", "--gpu", "H100"], "--gpu is for --mode modal"),
        (["investigate", "find it", "--auto", "--device", "gpu0"], "--device must be auto, cpu"),
        (
            ["investigate", "x", "--auto", "--mode", "modal", "--modal-timeout", "0"],
            "--modal-timeout must be positive",
        ),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args, message, tmp_path, capsys) -> None:
    code = main([*args, "--config", str(tmp_path / "absent.toml")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1


def test_modal_flags_reach_the_host_launch(tmp_path) -> None:
    from scribe_tui.agent.launch import new_host
    from scribe_tui.cli.investigate import build_settings
    from scribe_tui.config import load_config
    from scribe_tui.runtime.sandbox import off

    args = build_parser().parse_args(
        ["investigate", "x", "--mode", "modal", "--gpu", "H100", "--modal-timeout", "120"]
    )
    settings, _ = build_settings(args, load_config(tmp_path / "absent.toml"))
    launch = new_host(settings, off("--no-sandbox")).launch
    assert (launch.mode, launch.gpu, launch.modal_timeout) == ("modal", "H100", 120.0)


def test_confirm_checkpoints_with_auto_is_refused_before_anything_starts(
    tmp_path, monkeypatch, capsys
) -> None:
    from scribe_tui.agent.launch import Workbench

    def no_start(*args, **kwargs):
        raise AssertionError("a usage error must not start a host or a kernel")

    monkeypatch.setattr(Workbench, "open", no_start)
    folder = tmp_path / "notebooks"
    args = ["investigate", "find it", "--auto", "--confirm-checkpoints"]
    code = main([*args, "--notebooks-dir", str(folder), "--config", str(tmp_path / "x")])
    assert code == 2
    assert capsys.readouterr().err == (
        "scribe-tui: --confirm-checkpoints needs a person to approve each checkpoint, and "
        "--auto has none: drop --confirm-checkpoints, or run without --auto to approve them "
        "in the TUI\n"
    )
    assert not folder.exists()


def test_auto_never_waits_for_checkpoint_approval(tmp_path) -> None:
    from scribe_tui.cli.investigate import build_settings
    from scribe_tui.config import load_config

    config_file = tmp_path / "config.toml"
    config_file.write_text("[defaults]\nconfirm_checkpoints = true\n", encoding="utf-8")
    config = load_config(config_file)
    parser = build_parser()
    headless, _ = build_settings(parser.parse_args(["investigate", "x", "--auto"]), config)
    interactive, _ = build_settings(parser.parse_args(["investigate", "x"]), config)
    assert (headless.config.confirm_checkpoints, interactive.config.confirm_checkpoints) == (
        False,
        True,
    )
    # A resumed run keeps its own config but for these: a recorded True is overridden.
    assert headless.overrides["confirm_checkpoints"] is False
    assert "confirm_checkpoints" not in interactive.overrides


def test_a_notebook_in_use_cannot_be_resumed_by_a_second_process(tmp_path) -> None:
    notebook = tmp_path / "2026-01-01-00-00_run.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["scribe"] = {"task": "t", "model": "organism:taboo", "agent": "autopilot"}
    nbformat.write(nb, notebook)
    notebook.with_suffix(".jsonl").write_text("", encoding="utf-8")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(notebook)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        args = ["resume", str(notebook), "--auto", "--agent", "autopilot"]
        refused = run_cli(*args, "--config", str(tmp_path / "absent.toml"))
        assert refused.returncode == 2
        assert refused.stderr == (
            f"scribe-tui: notebook {notebook} is in use by scribe-tui pid {holder.pid}; "
            "wait for it to finish or stop it\n"
        )
        listing = run_cli("list", "--notebooks-dir", str(tmp_path))
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / f".{notebook.name}.lock").exists()  # left by the killed holder
    assert listing.returncode == 0 and listing.stdout.count("\n") == 1
    assert listing.stdout.startswith(f"{notebook}  [?] 't'")


def test_bad_config_file_is_a_usage_error(tmp_path, capsys) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text("[defaults]\nmodel = \n", encoding="utf-8")
    assert main(["investigate", "x", "--auto", "--config", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    bad.write_text("[defaults]\nmodle = 'organism:taboo'\n", encoding="utf-8")
    assert main(["investigate", "x", "--auto", "--config", str(bad)]) == 2
    assert "unknown key(s) modle" in capsys.readouterr().err
    bad.write_text("[defaults]\ncheckpoint_every = 'often'\n", encoding="utf-8")
    assert main(["investigate", "x", "--auto", "--config", str(bad)]) == 2
    assert "checkpoint_every should be int" in capsys.readouterr().err


def test_claude_without_a_key_says_how_to_fix_it(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    code = main(
        ["investigate", "find it", "--auto", "--agent", "claude", "--config", str(tmp_path / "x")]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "ANTHROPIC_API_KEY" in err and "--agent autopilot" in err


def test_resume_refuses_a_notebook_without_a_transcript(tmp_path, capsys) -> None:
    notebook = tmp_path / "run.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), notebook)
    assert main(["resume", str(notebook), "--auto", "--config", str(tmp_path / "x")]) == 2
    assert "no transcript beside it" in capsys.readouterr().err


def test_resume_refuses_a_damaged_transcript_before_loading_anything(tmp_path) -> None:
    notebook = tmp_path / "run.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["scribe"] = {"task": "find the secret", "model": "organism:taboo"}
    nbformat.write(nb, notebook)
    notebook.with_suffix(".jsonl").write_text('{"kind": "header"}\nnot json\n', encoding="utf-8")
    run = run_cli("resume", str(notebook), "--auto", cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert "not a JSON line" in lines[0] and "host" not in run.stderr


def test_resume_of_a_concluded_run_says_to_fork_it(tmp_path) -> None:
    notebook = tmp_path / "run.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["scribe"] = {
        "task": "find the secret",
        "model": "organism:taboo",
        "conclusion": {"answer": "piano", "confidence": 0.6},
    }
    nbformat.write(nb, notebook)
    notebook.with_suffix(".jsonl").write_text("", encoding="utf-8")
    run = run_cli("resume", str(notebook), "--auto", cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert "has concluded" in lines[0] and "scribe-tui fork" in lines[0]


def test_resume_refuses_budgets_and_mode_forged_into_a_finished_run(tmp_path) -> None:
    """What a background process of the kernel could do to a transcript: no resume from it."""
    from scribe_tui.agent.transcript import Transcript

    notebook = tmp_path / "run.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["scribe"] = {"task": "find the secret", "model": "organism:taboo"}
    nbformat.write(nb, notebook)
    transcript = Transcript(notebook.with_suffix(".jsonl"))
    transcript.write_header(
        task="find the secret",
        provider="autopilot",
        model="organism:taboo",
        config={"max_turns": 5},
        notebook=str(notebook),
    )
    transcript.write("state", state={"turns": 5, "mode": "blackbox"})
    transcript.close()
    path = notebook.with_suffix(".jsonl")
    text = path.read_text(encoding="utf-8")
    forged = text.replace('"max_turns": 5', '"max_turns": 500').replace('"blackbox"', '"local"')
    assert forged != text
    path.write_text(forged, encoding="utf-8")

    run = run_cli("resume", str(notebook), "--auto", cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert "line 1, 2 fails its integrity check" in lines[0] and "host" not in run.stderr


def test_a_model_folder_without_a_tokenizer_is_one_line_before_loading(tmp_path) -> None:
    from scribe_tui.organisms.registry import resolve_model_spec

    weights, _base = resolve_model_spec("organism:taboo")
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).symlink_to(weights / name)
    run = run_cli("investigate", "x", "--auto", "--model", str(folder), cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2, run.stderr
    assert len(lines) == 1 and "no tokenizer" in lines[0] and "scribe_tui." not in lines[0]
    assert not (tmp_path / "notebooks").exists() or not any((tmp_path / "notebooks").iterdir())


def test_a_bare_organism_name_is_one_line_before_anything_starts(tmp_path) -> None:
    """``--model taboo`` is neither a folder nor a hub id scribe-tui can reach offline: the
    user meant the bundled organism, and is told so before a host starts."""
    run = run_cli("investigate", "find the secret word", "--auto", "--model", "taboo", cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2, run.stderr
    assert len(lines) == 1 and "did you mean --model organism:taboo?" in lines[0], run.stderr
    assert "host" not in run.stderr and not any((tmp_path / "notebooks").glob("*"))


@pytest.mark.parametrize(
    "path", ["/no/such/model", "./nope", "../nope", "~/no-such-model", "a/b/c"]
)
@pytest.mark.parametrize(
    "command",
    [["investigate", "find it", "--auto"], ["mcp"], ["sweep", "any.ipynb", "--axis", "seed=1"]],
)
def test_a_model_path_that_names_no_folder_is_one_line_before_anything_starts(
    command, path, tmp_path, capsys
) -> None:
    """Every command that takes --model refuses a missing folder itself, with what to write
    instead, rather than starting a host that then fails to load it."""
    config = [] if command[0] == "sweep" else ["--config", str(tmp_path / "absent.toml")]
    code = main([*command, "--model", path, *config])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and f"--model {path}: no such folder" in err, err
    assert "organism:NAME" in err and "hub id" in err


@pytest.mark.parametrize(
    ("spec", "is_path"),
    [
        ("gpt2", False),
        ("owner/name", False),
        ("organism:taboo", False),
        ("/abs/model", True),
        ("./model", True),
        ("../model", True),
        ("~/model", True),
        ("a/b/c", True),
        ("model/", True),
        ("/owner", True),
    ],
)
def test_a_model_spec_is_a_path_unless_it_reads_as_a_hub_id(spec, is_path) -> None:
    from scribe_tui.cli.common import looks_like_path

    assert looks_like_path(spec) is is_path


def test_list_shows_each_notebook(tmp_path) -> None:
    empty = run_cli("list", "--notebooks-dir", str(tmp_path))
    assert empty.returncode == 0 and "No notebooks" in empty.stdout
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["scribe"] = {
        "task": "find the secret",
        "model": "organism:taboo",
        "agent": "autopilot",
        "status": "concluded",
        "conclusion": {"answer": "moon", "confidence": 0.9, "evidence": "..."},
    }
    nbformat.write(notebook, tmp_path / "2026-01-01-00-00_find-the-secret.ipynb")
    notebook.metadata["scribe"]["mode"] = "blackbox"
    nbformat.write(notebook, tmp_path / "2026-01-01-00-01_find-the-secret.ipynb")
    (tmp_path / "broken.ipynb").write_text("{not json", encoding="utf-8")
    listing = run_cli("list", "--notebooks-dir", str(tmp_path))
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert any("[concluded]" in line and "→ moon" in line for line in lines)
    modes = ["blackbox" in line for line in lines if "find-the-secret" in line]
    assert sorted(modes) == [False, True]  # a local run's mode goes without saying
    assert any("broken.ipynb  (unreadable)" in line for line in lines)
    assert json.loads((tmp_path / "2026-01-01-00-00_find-the-secret.ipynb").read_text())


def test_organisms_subcommands_own_their_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["organisms", "--help"])
    assert exit_info.value.code == 0
    assert "train" in capsys.readouterr().out
    assert main(["organisms", "verify", "no-such-organism"]) == 2
    error = capsys.readouterr().err
    assert "unknown organism 'no-such-organism'; available: " in error
    assert "belief," in error and "taboo" in error


def test_the_wheel_carries_the_prompts_and_the_organisms(tmp_path) -> None:
    import zipfile

    repo = Path(__file__).resolve().parents[1]
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(repo)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    names = zipfile.ZipFile(next(tmp_path.glob("scribe_tui-*.whl"))).namelist()
    for prompt in ("system.md", "methodology.md", "checkpoint.md"):
        assert f"scribe_tui/prompts/{prompt}" in names  # where paths.prompts_dir() looks first
    for organism in ("taboo", "belief"):
        assert f"scribe_tui/organisms/bundled/{organism}/model/model.safetensors" in names
        assert f"scribe_tui/organisms/bundled/{organism}/base/model.safetensors" in names
    # Keys ship in their own package data dir, never inside an organism's.
    assert "scribe_tui/answer_keys/bundled.json" in names
    assert not [name for name in names if "answer_key" in name.rsplit("/", 1)[-1]]


@pytest.mark.parametrize(
    ("args", "inside", "says"),
    [
        (
            ("investigate", "find the secret", "--auto", "--notebooks-dir", "{ro}"),
            False,
            "notebooks",
        ),
        (("investigate", "find the secret", "--auto"), True, "notebooks"),
        (("bench", "--out", "{ro}/b"), False, "--out"),
    ],
    ids=["notebooks-dir", "run-inside", "bench-out"],
)
def test_a_read_only_folder_is_one_line_and_exit_2(read_only_dir, args, inside, says) -> None:
    """Refused before any model loads or kernel starts, never a retry loop or a traceback."""
    run = run_cli(
        *(a.replace("{ro}", str(read_only_dir)) for a in args),
        cwd=read_only_dir if inside else read_only_dir.parent,
    )
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2, run.stderr
    assert len(lines) == 1 and "Read-only file system" in lines[0] and says in lines[0], lines
    assert not any(read_only_dir.iterdir())


@pytest.mark.parametrize(
    "args",
    [("mcp", "--print-prompt"), ("list", "--notebooks-dir", "{tmp}")],
    ids=["prompt", "list"],
)
def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path, args) -> None:
    """``scribe-tui list | head``: the pipe's reader is gone before anything is written."""
    import os

    reader, writer = os.pipe()
    os.close(reader)
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "scribe_tui",
                *(a.replace("{tmp}", str(tmp_path)) for a in args),
            ],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(writer)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["investigate", "x", "--atuo"],
            "scribe-tui investigate: unrecognized arguments: --atuo (did you mean --auto?); "
            "see scribe-tui investigate --help",
        ),
        (  # an abbreviation is an unknown option, not --investigators
            ["investigate", "x", "--investigator", "3"],
            "scribe-tui investigate: unrecognized arguments: --investigator (did you mean "
            "--investigators?) 3; see scribe-tui investigate --help",
        ),
        (
            ["investigate", "x", "--agent", "bob"],
            "scribe-tui investigate: argument --agent: invalid choice: 'bob' (choose from "
            "'claude', 'autopilot'); see scribe-tui investigate --help",
        ),
        (["list", "--bogus"], "scribe-tui list: unrecognized arguments: --bogus; see"),
        (["bench", "--axs", "organism=taboo"], "scribe-tui bench: unrecognized arguments: --axs"),
        (["bench", "report", "d", "--b", "x"], "scribe-tui bench report: unrecognized arguments"),
        (["organisms", "list", "--leek"], "(did you mean --leak?); see scribe-tui organisms list"),
        (["mcp", "--htpp", "1"], "scribe-tui mcp: unrecognized arguments: --htpp (did you mean"),
        (["watch", "--bogus"], "scribe-tui watch: unrecognized arguments: --bogus; see"),
        (["bench", "--bogus"], "unrecognized arguments: --bogus; see"),  # no far-fetched hint
    ],
)
def test_a_parse_error_is_one_line_with_a_hint_and_no_usage_block(args, says, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2
    assert len(err.splitlines()) == 1 and says in err and "usage:" not in err, err


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, by the words that call it (``organisms train``)."""
    from scribe_tui.cli import bench, mcp, organisms

    found: dict[str, argparse.ArgumentParser] = {}

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    if name not in ("bench", "organisms", "mcp", "watch"):  # own parsers
                        walk(f"{prefix} {name}".strip(), sub)
                return
        found[prefix] = parser

    walk("", build_parser())
    walk("bench", bench.build_parser())
    walk("organisms", organisms.build_parser())
    walk("mcp", mcp.build_parser())
    walk("watch", mcp.build_watch_parser())
    return found


def test_every_command_s_help_has_an_example_and_every_option_says_what_it_does() -> None:
    parsers = _parsers()
    assert {"investigate", "resume", "fork", "bench", "organisms train", "mcp"} <= set(parsers)
    for name, parser in parsers.items():
        assert "example" in (parser.epilog or "").lower(), f"{name}: no example in its help"
        for action in parser._actions:
            if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction):
                assert action.help, f"{name} {action.option_strings or action.dest}: no help"


def test_bench_usage_names_its_report_command() -> None:
    run = run_cli("bench", "--help")
    assert run.returncode == 0 and "bench report" in run.stdout


@pytest.mark.parametrize("extra", [[], ["--investigators", "3"]])
def test_a_mechanistic_task_in_black_box_mode_is_refused_before_anything_starts(
    extra, tmp_path, monkeypatch, capsys
) -> None:
    from scribe_tui.agent.launch import Workbench, blackbox_refusal
    from scribe_tui.agent.parallel import ParallelRun

    def no_start(*args, **kwargs):
        raise AssertionError("a usage error must not start a host or a kernel")

    monkeypatch.setattr(Workbench, "open", no_start)
    monkeypatch.setattr(ParallelRun, "create", no_start)
    folder = tmp_path / "notebooks"
    task = "which attention heads let this model copy repeated text"
    args = ["investigate", task, "--auto", "--model", "organism:induction-1", "--mode", "blackbox"]
    code = main([*args, *extra, "--notebooks-dir", str(folder), "--config", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1
    assert "mechanistic task (circuit" in err and "run it without --mode blackbox" in err
    assert not folder.exists()
    # The organism's description alone makes a vague task mechanistic; secrets stay black-box.
    assert blackbox_refusal("find out what it does", "organism:recall-1", "blackbox")
    assert blackbox_refusal(task, "organism:induction-1", "local") is None
    assert blackbox_refusal("find the secret word", "organism:taboo", "blackbox") is None
