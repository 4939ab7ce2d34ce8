"""Model diffing: ``client.run_base`` runs a technique on the checkpoint before fine-tuning."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import host_fixtures
import pytest

from scribe_tui.runtime.host_process import HostProcess
from scribe_tui.runtime.interp_client import InterpClient

tiny_model = host_fixtures.tiny_model
private_runtime_dir = host_fixtures.private_runtime_dir
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # ship by value, like notebook code


def weight_sum(model, tokenizer) -> float:
    import torch

    with torch.no_grad():
        return float(sum(p.double().sum() for p in model.parameters()))


@pytest.fixture(scope="module")
def taboo_client() -> Iterator[InterpClient]:
    host = HostProcess("organism:taboo")
    host.start_sync()
    host.wait_ready_sync(120)
    client = InterpClient(host_file=host.host_file)
    yield client
    client.close()
    host.stop()


def test_an_organism_offers_its_base_checkpoint(taboo_client: InterpClient) -> None:
    assert taboo_client.info()["base_model"] is True
    tuned, base = taboo_client.run(weight_sum), taboo_client.run_base(weight_sum)
    assert tuned != base  # different weights: the fine-tune moved them
    assert taboo_client.run(weight_sum) == tuned  # and the subject model is untouched


def test_hooks_added_on_the_base_are_removed_too(taboo_client: InterpClient) -> None:
    def add_hook(model, tokenizer) -> int:
        model.transformer.h[0].register_forward_hook(lambda *args: None)
        return len(model.transformer.h[0]._forward_hooks)

    def count_hooks(model, tokenizer) -> int:
        return len(model.transformer.h[0]._forward_hooks)

    assert taboo_client.run_base(add_hook) == 1
    assert taboo_client.run_base(count_hooks) == 0


def test_a_model_without_a_base_says_so(tiny_model: Path) -> None:
    host = HostProcess(str(tiny_model))
    host.start_sync()
    try:
        host.wait_ready_sync(120)
        client = InterpClient(host_file=host.host_file)
        assert client.info()["base_model"] is False
        with pytest.raises(LookupError, match="no base checkpoint"):
            client.run_base(weight_sum)
        assert isinstance(client.run(weight_sum), float)  # the client still works
        client.close()
    finally:
        host.stop()
