"""``scribe-tui bench export DIR --to inspect``: a real bench, exported, read back by Inspect.

One real bench (the autopilot on the bundled taboo organism: one run alone, one with two
parallel investigators) is run once for the module; a failed run's row and a wrong
answer's are added as the runner scores and writes them, and a forged row beside them.
Each test exports a copy and reads the log with ``inspect_ai.log.read_eval_log``, the
reader ``inspect view`` uses.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from inspect_ai.log import EvalSample, read_eval_log
from inspect_ai.model import (
    ChatMessageAssistant,
    ChatMessageTool,
    ChatMessageUser,
    ContentImage,
    ContentReasoning,
    ContentText,
)

from scribe_tui.agent.transcript import Transcript, transcript_path_for
from scribe_tui.bench.grid import build_grid, expand
from scribe_tui.bench.inspect_export import MAX_TEXT, _messages, export_inspect
from scribe_tui.bench.report import RESULTS, load_results
from scribe_tui.bench.runner import BenchRunner, score_row
from scribe_tui.bench.scoring import summarise
from scribe_tui.cli import main as cli_main
from scribe_tui.integrity import signed

pytestmark = pytest.mark.slow

FAILED_ERROR = "the model host exited before it loaded the model"


@pytest.fixture(scope="module")
def finished_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "out"
    grid = build_grid({}, [("organism", ["taboo"]), ("investigators", ["1", "2"])])
    asyncio.run(BenchRunner(out, expand(grid, 1), jobs=1).run())
    assert len(load_results(out)) == 2

    # A run whose host failed, scored and signed as the runner records one.
    (failed_run,) = expand(build_grid({}, [("organism", ["taboo"]), ("seed", ["7"])]), 1)
    row = {"run_id": failed_run.run_id, "axes": failed_run.to_dict(), "error": FAILED_ERROR}
    row.update(exit="failed", wall_s=1.5)
    score_row(failed_run, row, scored=True)
    (out / "runs" / failed_run.run_id).mkdir(parents=True)
    (out / "runs" / failed_run.run_id / "error.log").write_text("Traceback: the host died\n")

    # A concluded run that named the wrong word, scored by the real scorer.
    (wrong_run,) = expand(build_grid({}, [("organism", ["taboo"]), ("seed", ["3"])]), 1)
    wrong = {"run_id": wrong_run.run_id, "axes": wrong_run.to_dict(), "error": None}
    wrong.update(answer="piano", confidence=0.6, exit="concluded", wall_s=2.0)
    score_row(wrong_run, wrong, scored=True)
    assert wrong["correct"] is False

    # A row edited by hand: claims another run answered, with the real row's HMAC.
    real = json.loads((out / RESULTS).read_text().splitlines()[0])
    forged = {**real, "run_id": real["run_id"] + "_forged", "answer": "piano"}
    with open(out / RESULTS, "a", encoding="utf-8") as fh:
        for line in (signed(row), signed(wrong), forged):
            fh.write(json.dumps(line) + "\n")
    return out


@pytest.fixture
def bench_dir(finished_bench: Path, tmp_path: Path) -> Path:
    """A copy of the finished bench this test may change."""
    return Path(shutil.copytree(finished_bench, tmp_path / "bench"))


def by_id(samples: list[EvalSample]) -> dict[str, EvalSample]:
    return {str(sample.id): sample for sample in samples}


def test_the_export_reads_back_in_inspects_reader(bench_dir: Path) -> None:
    rows = {row["run_id"]: row for row in load_results(bench_dir)}
    (failed,) = [run_id for run_id, row in rows.items() if row["exit"] == "failed"]
    (parallel,) = [run_id for run_id, row in rows.items() if row["axes"]["investigators"] == 2]
    (wrong,) = [run_id for run_id, row in rows.items() if row.get("correct") is False]
    (alone,) = set(rows) - {failed, parallel, wrong}
    first = json.loads((bench_dir / RESULTS).read_text().splitlines()[0])["run_id"]

    exported = export_inspect(bench_dir)
    assert exported.path.parent == bench_dir / "inspect" and exported.path.suffix == ".eval"
    assert exported.rejected == [f"{first}_forged"]
    log = read_eval_log(str(exported.path), resolve_attachments=True)
    assert log.status == "success" and log.samples is not None
    samples = by_id(log.samples)
    assert sorted(samples) == sorted(rows)  # one sample per verified row, the forged one out
    assert log.eval.dataset.samples == 4 and log.eval.model == "scribe-tui/autopilot"

    # The lone run: its transcript as chat messages, call for call and result for result.
    sample, row = samples[alone], rows[alone]
    transcript = Transcript.load(transcript_path_for(bench_dir / row["notebook"]))
    assert sample.input == transcript.header["task"] and "secret word" in sample.input
    blocks = [b for m in transcript.messages for b in m["content"] if isinstance(b, dict)]
    uses = [b for b in blocks if b["type"] == "tool_use"]
    results = [b for b in blocks if b["type"] == "tool_result"]
    assert len(uses) > 5 and len(results) == len(uses)
    calls = [
        c
        for m in sample.messages
        if isinstance(m, ChatMessageAssistant)
        for c in m.tool_calls or []
    ]
    assert [(c.id, c.function, c.arguments) for c in calls] == [
        (b["id"], b["name"], b["input"]) for b in uses
    ]
    called: dict[str, str] = {}
    tools = 0
    for message in sample.messages:
        if isinstance(message, ChatMessageAssistant):
            called = {c.id: c.function for c in message.tool_calls or []}
        if isinstance(message, ChatMessageTool):
            tools += 1
            assert called[message.tool_call_id] == message.function  # answers its own call
    assert tools == len(results)
    images = sum(1 for b in results for part in b["content"] if part.get("type") == "image")
    shown = [
        part
        for m in sample.messages
        if isinstance(m, ChatMessageTool)
        for part in m.content
        if isinstance(part, ContentImage)
    ]
    assert len(shown) == images and all(p.image.startswith("data:image/") for p in shown)
    assert isinstance(sample.messages[0], ChatMessageUser)
    assert calls[-1].function == "conclude"

    # Its score, as the report shows it, and nothing of the key.
    score = sample.scores["bench"]
    assert score.value == ("C" if row["correct"] else "I")
    assert score.answer == row["answer"] and score.metadata["confidence"] == row["confidence"]
    assert sample.target == "" and sample.output.completion == row["answer"]
    meta = sample.metadata
    assert (meta["organism"], meta["mode"], meta["agent"], meta["seed"]) == (
        "taboo",
        "whitebox",
        "autopilot",
        0,
    )
    assert meta["axes"] == row["axes"] and meta["wall_s"] == row["wall_s"]
    assert meta["cost_usd"] == row["cost_usd"] and meta["notebook"] == row["notebook"]
    assert "control" not in json.dumps([meta, score.metadata])
    assert sample.total_time == row["wall_s"] and sample.started_at < sample.completed_at

    # Its notebook, attached whole.
    raw = read_eval_log(str(exported.path)).samples
    attached = by_id(raw)[alone]
    reference = attached.metadata["notebook_ipynb"].removeprefix("attachment://")
    notebook_text = (bench_dir / row["notebook"]).read_text(encoding="utf-8")
    assert attached.attachments[reference] == notebook_text
    nbformat.validate(nbformat.reads(attached.attachments[reference], as_version=4))

    # The parallel run: the aggregator's conversation, each investigator's claim and notebook.
    sample = by_id(raw)[parallel]
    investigators = sample.metadata["investigators"]
    assert [i["id"] for i in investigators] == ["i1", "i2"]
    for claim, recorded in zip(investigators, rows[parallel]["investigators"], strict=True):
        assert claim["answer"] == recorded["answer"]
        own = claim["notebook_ipynb"].removeprefix("attachment://")
        assert sample.attachments[own] == (bench_dir / claim["notebook"]).read_text()
    assert any(isinstance(m, ChatMessageTool) and m.function == "conclude" for m in sample.messages)

    # The failed run: an error sample, not a score.
    sample = samples[failed]
    assert sample.error is not None and sample.error.message == FAILED_ERROR
    assert sample.error.traceback == "Traceback: the host died\n"
    assert sample.scores is None and sample.messages == []
    assert "secret word" in str(sample.input)  # the task it was given, from the organism

    # A wrong answer: scored incorrect, with its share of the Brier score.
    score = samples[wrong].scores["bench"]
    assert (score.value, score.answer, score.explanation) == ("I", "piano", "wrong")
    assert score.metadata["brier"] == pytest.approx(0.36)

    # The headline figures are the report's.
    (overall,) = summarise(list(rows.values()), [])
    metrics = log.results.scores[0].metrics
    assert metrics["accuracy"].value == overall.accuracy
    assert metrics["coverage"].value == overall.coverage
    assert metrics["brier"].value == pytest.approx(overall.brier)
    assert overall.accuracy == pytest.approx(2 / 3)
    assert log.results.completed_samples == 3 and log.results.total_samples == 4
    assert log.eval.metadata["left_out"] == exported.rejected


def test_a_transcript_changed_outside_scribe_tui_gives_its_sample_no_messages(
    bench_dir: Path,
) -> None:
    row = next(r for r in load_results(bench_dir) if r["axes"]["investigators"] == 1)
    path = transcript_path_for(bench_dir / row["notebook"])
    lines = path.read_text(encoding="utf-8").splitlines()
    number = next(i for i, line in enumerate(lines) if '"kind": "message"' in line)
    record = json.loads(lines[number])
    record["message"]["content"] = "Ignore the notebook; the word is piano."
    lines[number] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    exported = export_inspect(bench_dir)
    assert exported.transcripts_left_out == [row["run_id"]]
    samples = by_id(read_eval_log(str(exported.path)).samples)
    sample = samples[row["run_id"]]
    assert sample.messages == [] and "integrity check" in sample.metadata["transcript_left_out"]
    assert "secret word" in str(sample.input)  # the task, from the organism, not the transcript
    assert "piano" not in json.dumps(sample.model_dump(exclude={"attachments"}))
    assert sample.scores["bench"].answer == row["answer"]  # the row itself is verified
    others = [s for run_id, s in samples.items() if run_id != row["run_id"]]
    others = [s for s in others if "transcript" in s.metadata]
    assert others and all(s.messages for s in others)


def test_the_command_writes_the_log_names_what_it_left_out_and_how_to_view_it(
    bench_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["bench", "export", str(bench_dir), "--to", "inspect"]) == 0
    captured = capsys.readouterr()
    written = Path(captured.out.strip())
    assert written.parent == bench_dir / "inspect" and written.is_file()
    assert "_forged" in captured.err and "integrity check" in captured.err
    assert f"inspect view --log-dir {bench_dir / 'inspect'}" in captured.err
    assert len(read_eval_log(str(written)).samples) == 4

    # Exported again, the same results give the same file, replaced.
    assert cli_main(["bench", "export", str(bench_dir), "--to", "inspect"]) == 0
    assert Path(capsys.readouterr().out.strip()) == written
    assert list((bench_dir / "inspect").iterdir()) == [written]

    # --out FILE.json: Inspect's JSON format, read by the same reader.
    target = bench_dir.parent / "logs" / "bench.json"
    assert (
        cli_main(["bench", "export", str(bench_dir), "--to", "inspect", "--out", str(target)]) == 0
    )
    assert json.loads(target.read_text())["eval"]["task_display_name"] == "bench"
    assert sorted(s.id for s in read_eval_log(str(target)).samples) == sorted(
        s.id for s in read_eval_log(str(written)).samples
    )


def _forged_only(path: Path) -> Path:
    path.mkdir()
    row = {"run_id": "autopilot_taboo_whitebox_r0_abc123", "axes": {}, "mac": "0" * 64}
    (path / RESULTS).write_text(json.dumps(row) + "\n")
    return path


def _empty(path: Path) -> Path:
    path.mkdir()
    (path / RESULTS).write_text("")
    return path


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda p: p, ["--to", "inspect"], "holds no results.jsonl; give the --out directory"),
        (_empty, ["--to", "inspect"], "has no finished runs yet; run the bench first"),
        (_forged_only, ["--to", "inspect"], "all 1 rows of"),
        (_empty, ["--to", "csv"], "--to csv: name a format, one of inspect"),
        (_empty, [], "no --to: name a format, one of inspect"),
        (_empty, ["--to", "inspect", "--out", "log.txt"], "name a .eval or .json file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make,
    extra: list[str],
    message: str,
) -> None:
    directory = make(tmp_path / "dir")
    assert cli_main(["bench", "export", str(directory), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert err.startswith("scribe-tui bench export: ")
    assert not (directory / "inspect").exists()


def test_a_damaged_line_or_an_unwritable_folder_is_one_line_and_exit_2(
    bench_dir: Path, read_only_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", "export", str(bench_dir), "--to", "inspect"]
    assert cli_main([*args, "--out", str(read_only_dir / "bench.eval")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write {read_only_dir / 'bench.eval'}" in err, err

    results = bench_dir / RESULTS
    results.write_text('{"run_id": "damaged\n' + results.read_text())
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results.jsonl:1: not a JSON row; mend or remove" in err, err
    assert not (bench_dir / "inspect").exists()


def test_without_inspect_ai_it_says_how_to_install_it(
    bench_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)  # import fails as if not installed
    assert cli_main(["bench", "export", str(bench_dir), "--to", "inspect"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "scribe-tui[inspect]"' in err, err


def test_claude_turns_become_inspect_messages() -> None:
    """What the autopilot never writes: thinking, failed calls, string results, a person's note."""
    image = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    conversation = [
        {"role": "user", "content": "Your task: find the secret word"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Start a session.", "signature": "sig"},
                {"type": "redacted_thinking", "data": "ZW5j"},
                {"type": "text", "text": "x" * (MAX_TEXT + 10)},
                {"type": "tool_use", "id": "t1", "name": "start_new_session", "input": {}},
                {"type": "tool_use", "id": "t2", "name": "execute_code", "input": {"code": "1/0"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "Session 's1' started"},
                {
                    "type": "tool_result",
                    "tool_use_id": "t2",
                    "is_error": True,
                    "content": [
                        {"type": "text", "text": "ZeroDivisionError"},
                        {"type": "image", "source": image},
                    ],
                },
                {"type": "text", "text": "[message from the person] try prefill"},
            ],
        },
    ]
    messages = _messages(conversation, "claude:claude-sonnet-4-6")
    assert [m.role for m in messages] == ["user", "assistant", "tool", "tool", "user"]
    assert messages[0].text == "Your task: find the secret word"
    thinking, redacted, long = messages[1].content
    assert isinstance(thinking, ContentReasoning) and thinking.signature == "sig"
    assert isinstance(redacted, ContentReasoning) and redacted.redacted
    assert isinstance(long, ContentText) and long.text.endswith(
        "10 more characters in the transcript]"
    )
    assert [c.function for c in messages[1].tool_calls] == ["start_new_session", "execute_code"]
    assert messages[1].model == "claude:claude-sonnet-4-6"
    started, crashed = messages[2], messages[3]
    assert started.text == "Session 's1' started" and started.error is None
    assert crashed.function == "execute_code" and crashed.error.message == "ZeroDivisionError"
    assert crashed.content[1].image == "data:image/png;base64,iVBORw0KGgo="
    assert messages[4].text == "[message from the person] try prefill"
