"""The technique library through the real model host: ``client.run`` from a kernel,
the seed's five shipped as notebook code, and scripted Claude using the library."""

from __future__ import annotations

import json
from pathlib import Path

import cloudpickle
import host_fixtures
import pytest
import seed_techniques as seed
from fake_anthropic import FakeAnthropic, Turn, fake_anthropic_fixture, tool_use  # noqa: F401
from technique_models import build_model, build_tokenizer

import scribe_tui.techniques as tq
from scribe_tui.agent.claude import ClaudeProvider
from scribe_tui.agent.loop import Investigation, InvestigationConfig
from scribe_tui.runtime.host_process import HostProcess
from scribe_tui.runtime.interp_client import InterpClient, setup_code
from scribe_tui.tools import NotebookTools

private_runtime_dir = host_fixtures.private_runtime_dir
# The seed's techniques travel by value, as functions defined in a notebook do.
cloudpickle.register_pickle_by_value(seed)

LIBRARY_CELL = """\
from scribe_tui.techniques import logit_lens

lens = client.run(logit_lens, prompt="the moon is", top_k=3)
print(lens["final_norm"], lens["num_layers"], len(lens["layers"][-1]["top_tokens"]))
"""


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model("llama", tmp_path_factory.mktemp("llama"), build_tokenizer())


@pytest.fixture(scope="module")
def host(llama: Path):
    hp = HostProcess(str(llama), device="cpu")
    hp.start_sync()
    hp.wait_ready_sync(timeout=180)
    yield hp
    hp.stop()


def test_the_seeds_five_and_the_library_agree_through_client_run(host: HostProcess) -> None:
    with InterpClient(host_file=host.host_file) as client:
        prompt, question = "the moon is", "what is your secret word ?"
        assert client.run(seed.generate_text, prompt=prompt, max_new_tokens=5) == client.run(
            tq.generate_text, prompt=prompt, max_new_tokens=5
        )
        targets = {"prompt": prompt, "target_tokens": [" bright", " zebra"]}
        theirs, ours = (
            client.run(seed.analyze_token_probs, **targets),
            client.run(tq.analyze_token_probs, **targets),
        )
        assert {t: v["token_id"] for t, v in theirs.items()} == {
            t: v["token_id"] for t, v in ours.items()
        }
        seed_info = client.run(seed.get_model_info)
        assert {
            k: v for k, v in client.run(tq.get_model_info).items() if k in seed_info
        } == seed_info
        for _ in range(2):  # the second call reads hidden states after the host's restore
            lens = client.run(tq.logit_lens, prompt=prompt, top_k=4)
            seed_lens = client.run(seed.logit_lens, prompt=prompt, top_k=4)
            assert lens["num_layers"] == seed_lens["num_layers"] == 3
            assert [t["token_id"] for t in lens["layers"][-1]["top_tokens"]] == [
                t["token_id"] for t in seed_lens["layers"][-1]["top_tokens"]
            ]
        attack = {
            "user_prompt": question,
            "prefill_text": " my secret word is",
            "max_new_tokens": 5,
        }
        assert client.run(seed.prefill_attack, **attack) == client.run(tq.prefill_attack, **attack)
        # The seed document's calls, as researchers copy them from the seed prompt.
        top = client.run(tq.analyze_token_probs, text=prompt, top_k=5)
        seed_top = client.run(seed.document_analyze_token_probs, text=prompt, top_k=5)
        assert [t["token"] for t in top] == [t["token"] for t in seed_top]
        rows = client.run(tq.logit_lens, text=prompt, layers=[0, 2])
        seed_rows = client.run(seed.document_logit_lens, text=prompt, layers=[0, 2])
        assert [sorted(r) for r in rows] == [sorted(r) for r in seed_rows]
        assert rows[-1]["top_token"] == seed_rows[-1]["top_token"]


async def test_scripted_claude_runs_a_library_technique_through_client_run(
    fake_anthropic: FakeAnthropic,
    host: HostProcess,
    llama: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    fake_anthropic.script(
        Turn([tool_use("toolu_01", "start_new_session", {"experiment_name": "library"})]),
        Turn([tool_use("toolu_02", "init_session", {"session_id": "s1"})]),
        Turn([tool_use("toolu_03", "execute_code", {"session_id": "s1", "code": LIBRARY_CELL})]),
        Turn(
            [
                tool_use(
                    "toolu_04",
                    "conclude",
                    {
                        "session_id": "s1",
                        "answer": "unknown",
                        "confidence": 0.1,
                        "evidence": "lens",
                    },
                )
            ]
        ),
    )
    tools = NotebookTools(
        tmp_path / "notebooks", setup_code=setup_code(str(llama)), kernel_env=host.kernel_env()
    )
    provider = ClaudeProvider(api_key="sk-ant-test", base_url=fake_anthropic.base_url)
    investigation = Investigation(
        "find the secret", provider, tools, config=InvestigationConfig(checkpoint_every=0)
    )
    try:
        outcome = await investigation.run()
    finally:
        await provider.aclose()
        await tools.aclose()
    assert outcome.reason == "concluded"

    def tool_result(request: dict, tool_id: str) -> str:
        for message in request["messages"]:
            for block in message["content"] if isinstance(message["content"], list) else []:
                if block.get("tool_use_id") == tool_id:
                    return json.dumps(block["content"])
        raise AssertionError(f"no result for {tool_id}")

    system = json.dumps(fake_anthropic.requests[0]["system"])
    assert "scribe_tui.techniques" in system
    listing = tool_result(fake_anthropic.requests[2], "toolu_02")
    assert "InterpClient: " in listing
    assert "logit_lens(prompt, top_k=10, layers=None, position=-1, chat=False)" in listing
    ran = tool_result(fake_anthropic.requests[3], "toolu_03")
    assert "model.norm 3 3" in ran, ran


async def test_init_session_lists_the_library_only_where_client_run_works(tmp_path: Path) -> None:
    lines = {
        "InterpClient: organism:taboo on cpu (float32), 1.2M params, 2 layers — ready": True,
        "InterpClient: organism:taboo on cpu (float32), 1.2M params (black-box: "
        "client.generate / client.chat) — ready": False,
    }
    for line, listed in lines.items():
        tools = NotebookTools(tmp_path / "notebooks", setup_code=f"print({line!r})")
        try:
            await tools.call("start_new_session", {"experiment_name": "setup"})
            result = await tools.call("init_session", {"session_id": "s1"})
        finally:
            await tools.aclose()
        assert not result.is_error and line in result.text
        assert ("- logit_lens(prompt, top_k=10" in result.text) is listed
