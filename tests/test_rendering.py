"""What the agent sees of a cell: pure rendering and token counting, no kernel."""

from __future__ import annotations

import base64
import hashlib
import io
import socket

import pytest
from PIL import Image

from scribe_tui.tools import tokens
from scribe_tui.tools.rendering import (
    collapse_progress,
    error_line,
    format_error,
    html_to_text,
    image_block,
    render_outputs,
    status_line,
    strip_ansi,
    trim_traceback,
    truncate,
)

# Tracebacks as ipykernel 7 / IPython 9 send them (colours included).
CELL_ERROR = [
    "\x1b[31m---------------------------------------------------------------------------\x1b[39m",
    "\x1b[31mZeroDivisionError\x1b[39m                         Traceback (most recent call last)",
    "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[1]\x1b[39m\x1b[32m, line 1\x1b[39m\n"
    "\x1b[32m----> \x1b[39m\x1b[32m1\x1b[39m \x1b[32m1\x1b[39m/\x1b[32m0\x1b[39m\n",
    "\x1b[31mZeroDivisionError\x1b[39m: division by zero",
]
SYNTAX_ERROR = [
    "  \x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[3]\x1b[39m\x1b[32m, line 1\x1b[39m\n"
    "\x1b[31m    \x1b[39m\x1b[31mdef (\x1b[39m\n        ^\n"
    "\x1b[31mSyntaxError\x1b[39m\x1b[31m:\x1b[39m invalid syntax\n"
]


def library_error(n_library: int) -> list[str]:
    frames = [
        "\x1b[31m-----------------------------------------------------------------\x1b[39m",
        "\x1b[31mJSONDecodeError\x1b[39m         Traceback (most recent call last)",
        "\x1b[36mCell\x1b[39m In[2], line 4\n      3     return json.loads(x)\n----> 4 f('{bad')\n",
        "\x1b[36mFile \x1b[39m\x1b[32m~/.venv/lib/python3.11/site-packages/IPython/core/"
        "interactiveshell.py:3577\x1b[39m, in run_code(self)\n----> 3577 exec(code_obj)\n",
        "\x1b[36mCell\x1b[39m In[2], line 3, in f(x)\n----> 3     return json.loads(x)\n",
    ]
    frames += [
        f"\x1b[36mFile \x1b[39m~/lib/python3.11/json/decoder.py:{300 + i}, in step{i}(s)\n"
        f"--> {300 + i}     step{i + 1}(s)\n"
        for i in range(n_library)
    ]
    frames.append("\x1b[31mJSONDecodeError\x1b[39m: Expecting property name: line 1 column 2")
    return frames


def png(width: int, height: int, color: str = "red") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def image_size(block: dict) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(block["source"]["data"]))).size


def stream(text: str, name: str = "stdout") -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def display(data: dict, kind: str = "display_data") -> dict:
    out = {"output_type": kind, "data": data, "metadata": {}}
    if kind == "execute_result":
        out["execution_count"] = 1
    return out


def test_strip_ansi_and_progress_bars() -> None:
    assert strip_ansi("\x1b[31mred\x1b[0m \x1b]0;title\x07plain") == "red plain"
    assert collapse_progress("10%\r50%\r100%\ndone\r\n") == "100%\ndone\n"


def test_html_falls_back_to_readable_text() -> None:
    markup = "<style>td{}</style><table><tr><th>a</th><th>b</th></tr><tr><td>1&amp;2</td></tr>"
    assert html_to_text(markup) == "a\tb\n1&2"


def test_traceback_keeps_cell_frames_and_drops_kernel_internals() -> None:
    frames = trim_traceback(library_error(2))
    text = "\n".join(frames)
    assert "\x1b" not in text
    assert "interactiveshell" not in text and "Traceback (most recent" not in text
    assert "Cell In[2], line 4" in text and "Cell In[2], line 3, in f(x)" in text
    assert "decoder.py:300" in text and "decoder.py:301" in text
    assert not text.rstrip().endswith("column 2")  # the closing line is reported separately


def test_long_library_stacks_keep_only_their_bottom() -> None:
    text = "\n".join(trim_traceback(library_error(10)))
    assert "7 library frames omitted" in text
    assert "decoder.py:300" not in text and "decoder.py:309" in text


def test_format_error_reads_like_python() -> None:
    error = {"ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": CELL_ERROR}
    assert format_error(error) == (
        "Traceback (most recent call last):\nCell In[1], line 1\n----> 1 1/0\n"
        "ZeroDivisionError: division by zero"
    )
    syntax = {"ename": "SyntaxError", "evalue": "invalid syntax (x.py, line 1)"}
    assert format_error({**syntax, "traceback": SYNTAX_ERROR}).endswith(
        "SyntaxError: invalid syntax"
    )
    assert format_error({**syntax, "traceback": []}) == "SyntaxError: invalid syntax (x.py, line 1)"
    assert error_line({"ename": "ValueError", "evalue": "first\nsecond"}) == "ValueError: first"


def test_text_results_in_order() -> None:
    blocks = render_outputs(
        [
            stream("hello\n"),
            stream("careful\n", "stderr"),
            display({"text/plain": "42", "text/html": "<b>42</b>"}, "execute_result"),
            display({"text/html": "<p>only <i>html</i></p>"}),
        ]
    )
    assert blocks == [{"type": "text", "text": "hello\ncareful\n42\nonly html"}]
    assert render_outputs([]) == [{"type": "text", "text": "(no output)"}]


def test_images_are_resized_to_the_long_side_limit() -> None:
    blocks = render_outputs(
        [display({"image/png": png(2048, 512), "text/plain": "<Figure>"}), stream("after\n")]
    )
    assert blocks[0] == {"type": "text", "text": "[image 1]\nafter"}
    assert blocks[1]["source"]["media_type"] == "image/png"
    assert image_size(blocks[1]) == (1024, 256)
    small = png(20, 10)
    assert image_block("image/png", small)["source"]["data"] == small  # passed through untouched


def test_image_count_is_capped_with_a_note() -> None:
    outputs = [display({"image/png": png(30, 30)}) for _ in range(50)]
    blocks = render_outputs(outputs, max_images=8, where="code cell 4 of nb.ipynb")
    images = [b for b in blocks if b["type"] == "image"]
    assert len(images) == 8
    assert (
        "42 more images omitted: at most 8 are shown; all are in code cell 4" in blocks[0]["text"]
    )


def test_undecodable_image_becomes_a_note() -> None:
    blocks = render_outputs([display({"image/png": "bm90IGFuIGltYWdl"})])
    assert blocks == [{"type": "text", "text": "[image/png image could not be decoded]"}]


def test_long_text_is_cut_to_the_budget_with_a_marker() -> None:
    text = "".join(f"line {i:05d} of the output\n" for i in range(20_000))
    cut = truncate(text, 500, "code cell 12 of notebooks/x.ipynb")
    assert tokens.count_tokens(cut) <= 550
    assert cut.startswith("line 00000") and cut.rstrip().endswith("line 19999 of the output")
    marker = next(line for line in cut.splitlines() if line.startswith("[…"))
    assert "tokens," in marker and "lines omitted" in marker
    assert "full output in code cell 12 of notebooks/x.ipynb" in marker
    assert truncate("short", 500) == "short"


def test_marker_repeats_a_disk_truncation_note_it_hides() -> None:
    note = "[scribe-tui: output truncated: 20.0 MB → 100 kB; 19.9 MB (5 lines) omitted here]"
    text = "a" * 40_000 + "\n" + note + "\n" + "b" * 40_000
    marker = truncate(text, 300, "code cell 1 of x.ipynb").split("\n")[1]
    assert (
        "; code cell 1 of x.ipynb keeps more of it (scribe-tui: output truncated: 20.0 MB" in marker
    )
    assert "full output" not in marker


def test_status_lines() -> None:
    timeout = status_line("timeout", timeout=600, message="", state_lost=False)
    assert timeout == "Timed out after 600 s; kernel interrupted, variables kept."
    died = status_line(
        "died",
        timeout=None,
        message="Kernel died (exit code 1) and was restarted.",
        state_lost=True,
    )
    assert died.startswith("The kernel died (exit code 1); it was restarted and all variables")
    assert "init_session" in died
    stuck = status_line("timeout", timeout=5, message="", state_lost=True)
    assert "would not stop" in stuck and "variables were lost" in stuck
    gone = status_line(
        "died", timeout=None, message="Kernel died", state_lost=True, restarted=False
    )
    assert "no kernel is running" in gone
    assert status_line("ok", timeout=1, message="", state_lost=False) == ""


def test_status_line_survives_truncation() -> None:
    blocks = render_outputs(
        [stream("x" * 100_000)], status="timeout", timeout=2.5, token_budget=200
    )
    assert blocks[0]["text"].endswith("Timed out after 2.5 s; kernel interrupted, variables kept.")


def test_token_count_falls_back_without_a_cached_encoding_or_the_network(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args[1:] or kwargs))
        raise OSError("the test forbids the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    tokens.encoding.cache_clear()
    try:
        assert tokens.encoding() is None
        assert tokens.count_tokens("x" * 330) == 100
        assert tokens.count_tokens("x" * 450, "code") == 100
        assert attempts == []  # no network attempt
        # A corrupt cached copy would make tiktoken download a fresh one: not used either.
        url_key = hashlib.sha1(tokens._CL100K_URL.encode()).hexdigest()
        (tmp_path / url_key).write_bytes(b"corrupt")
        tokens.encoding.cache_clear()
        assert tokens.encoding() is None
        assert attempts == []
    finally:
        tokens.encoding.cache_clear()


def test_token_count_uses_tiktoken_when_cached() -> None:
    if tokens._cached_file() is None:
        pytest.skip("cl100k_base is not in tiktoken's cache on this machine")
    assert tokens.encoding() is not None
    assert tokens.count_tokens("hello world") == 2
