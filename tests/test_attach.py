"""Attach: a person opens the agent's live, sealed kernel with `jupyter console --existing`.

The kernel is sealed (network closed included) where this machine can seal one; the
test id and a printed line say which it ran, and a cell checks the seal is real.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scribe_tui.events import Event, KernelStarted, event_from_dict
from scribe_tui.runtime.sandbox import base_policy, probe
from scribe_tui.tools import NotebookTools

SEALING = "sealed" if probe().sealed else "unsealed"


@pytest.mark.parametrize("sealing", [SEALING])
async def test_jupyter_console_reaches_the_live_kernel(tmp_path: Path, sealing: str) -> None:
    print(f"attach test runs {sealing}: {probe().label}")
    sealed = sealing == "sealed"
    outside = tmp_path / "outside.txt"  # beyond the kernel's grants
    outside.write_text("readable")
    events: list[Event] = []
    tools = NotebookTools(
        tmp_path / "notebooks",
        setup_code="print('ready')",
        on_event=events.append,
        kernel_sandbox=(
            (lambda cwd, scratch: base_policy(write=[str(cwd), str(scratch)])) if sealed else None
        ),
    )
    try:
        started = await tools.call("start_new_session", {})
        assert not started.is_error, started.text
        (kernel,) = [e for e in events if isinstance(e, KernelStarted)]
        assert Path(kernel.connection_file).is_file() and kernel.session_id == "s1"
        assert kernel.notebook.endswith(".ipynb")
        # Exactly what a person types; the console runs outside the sandbox, the kernel in it.
        console = subprocess.run(
            [sys.executable, "-m", "jupyter_console", "--existing", kernel.connection_file,
             "--simple-prompt", "--ZMQTerminalInteractiveShell.confirm_exit=False"],
            input="shared = 41\nprint('from the console', shared + 1)\n",
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        assert "from the console 42" in console.stdout, console.stdout + console.stderr
        # The agent's next cell sees what the person defined: one live kernel.
        result = await tools.call("execute_code", {"code": "print(shared * 2)"})
        assert not result.is_error and "82" in result.text, result.text
        # The seal this test claims: a sealed kernel cannot read outside its folders.
        probe_cell = f"""
try:
    print(open({str(outside)!r}).read())
except PermissionError:
    print("denied")
"""
        result = await tools.call("execute_code", {"code": probe_cell})
        assert ("denied" if sealed else "readable") in result.text, result.text
    finally:
        await tools.aclose()


def test_kernel_started_travels_in_the_event_stream() -> None:
    event = KernelStarted(session_id="s1", connection_file="/run/k.json", notebook="n.ipynb")
    line = event.to_json()
    assert '"type": "kernel_started"' in line and '"connection_file": "/run/k.json"' in line
    assert event_from_dict(json.loads(line)) == event
