"""Run techniques against a loaded model: the logic shared by the local host and the Modal class.

:class:`ModelExecutor` owns the model lock. Each ``run`` executes the shipped
function as-is (grads allowed), captures what it prints, and afterwards puts
back what the function changed around the model: hooks, training/eval mode,
``requires_grad``, grad mode, and attributes of the config, generation config
and tokenizer. In-place weight edits are not undone (copying the weights for
every call would cost too much); a technique that ablates must restore them.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import pickle
import threading
from collections.abc import Callable
from typing import Any

import cloudpickle
import torch

from scribe_tui.runtime.capture import Capture, Stream
from scribe_tui.runtime.host_protocol import BLACKBOX_REFUSAL, UnsendableResult, pack_exception
from scribe_tui.runtime.status import DeviceUsage, probe_device
from scribe_tui.techniques import prompting

_HOOK_DICTS = (
    "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
    "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs",
    "_backward_hooks", "_backward_pre_hooks",
    "_state_dict_hooks", "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
)  # fmt: skip
_GLOBAL_HOOKS = (
    "_global_forward_hooks", "_global_forward_hooks_with_kwargs",
    "_global_forward_hooks_always_called", "_global_forward_pre_hooks",
    "_global_backward_hooks", "_global_backward_pre_hooks",
    "_global_module_registration_hooks", "_global_parameter_registration_hooks",
    "_global_buffer_registration_hooks",
)  # fmt: skip
_TENSOR_HOOKS = ("_backward_hooks", "_post_accumulate_grad_hooks")
_PLAIN_HINT = "return plain data (str, numbers, lists, dicts, tensors)"
CANCELLED_BEFORE_START = "the call was cancelled before it started"
_REMEMBERED_CANCELS = 64  # cancels kept for calls that have not arrived (yet)


class ModelExecutor:
    """Holds the model and tokenizer and runs calls against them, one at a time."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        mode: str,
        device: str,
        dtype: str,
        base_loader: Callable[[], Any] | None = None,
    ):
        _hide_paths(model, tokenizer, name)
        self.model, self.tokenizer = model, tokenizer
        self.name, self.mode, self.device, self.dtype = name, mode, device, dtype
        self.parameters = sum(p.numel() for p in model.parameters())
        # The GPUs the weights sit on: the status probe looks at these and no other.
        self.gpus = sorted({p.device.index or 0 for p in model.parameters() if p.is_cuda})
        # The pre-fine-tune checkpoint for model diffing, loaded on first use.
        self._base_loader = base_loader
        self._base: Any = None
        self._lock = threading.Lock()  # the model: one call at a time
        # Guards the call bookkeeping below; notified when a call stops running.
        self._calls = threading.Condition()
        self._running: tuple[str, int] | None = None  # (call id, thread id) of the technique
        self._interrupted = False  # the running call was sent its KeyboardInterrupt
        self._waiting: set[str] = set()  # calls that arrived and have not started
        self._cancelled: dict[str, None] = {}  # cancels for calls not started, oldest first

    # --- white-box -------------------------------------------------------------------------------

    def run(
        self,
        payload: bytes,
        stream: Stream | None = None,
        call_id: str = "",
        variant: str = "model",
    ) -> dict[str, Any]:
        """Execute a cloudpickled ``(fn, kwargs)``; returns a reply dict (never raises).

        ``stream(name, text)`` receives output as it is printed; without it, output
        is returned in the reply's ``stdout``/``stderr``. ``call_id`` names the call
        for :meth:`cancel`. ``variant="base"`` runs it on the base checkpoint instead.
        """
        if self.mode == "blackbox":
            return {"ok": False, "kind": "blackbox", "message": BLACKBOX_REFUSAL}
        with self._calls:
            self._waiting.add(call_id)
        try:
            with self._lock:
                return self._run(payload, stream, call_id, variant)
        finally:
            with self._calls:
                self._waiting.discard(call_id)
                self._cancelled.pop(call_id, None)  # its cancel is spent once the call has left

    def _run(
        self, payload: bytes, stream: Stream | None, call_id: str, variant: str
    ) -> dict[str, Any]:
        try:
            model = self._base_model() if variant == "base" else self.model
        except Exception as exc:
            return {"ok": False, "kind": "exception", "error": pack_exception(exc)}
        capture = Capture(stream)
        try:
            fn, kwargs = cloudpickle.loads(payload)
        except Exception as exc:
            if hasattr(exc, "add_note"):
                exc.add_note(
                    "(while loading the function in the model host: define helpers "
                    "in the notebook or import them inside the function)"
                )
            return {
                "ok": False,
                "kind": "exception",
                "error": pack_exception(exc),
                **capture.rest(),
            }
        saved = _ModelState(model, self.tokenizer)
        try:
            with capture:
                try:
                    if not self._start(call_id):
                        raise KeyboardInterrupt(CANCELLED_BEFORE_START)
                    value = fn(model, self.tokenizer, **kwargs)
                finally:
                    self._stop()
            reply = {"ok": True, "value": _pack_result(value)}
        except UnsendableResult as exc:
            reply = {"ok": False, "kind": "unsendable", "message": str(exc)}
        except BaseException as exc:  # KeyboardInterrupt from cancel() included
            reply = {
                "ok": False,
                "kind": "exception",
                "error": pack_exception(exc, skip_frames=1),
            }
        finally:
            # Again: a cancel's KeyboardInterrupt that fired inside the first _stop cut it short.
            self._stop()
            saved.restore()
        return {**reply, **capture.rest()}

    def _start(self, call_id: str) -> bool:
        """Mark ``call_id`` running, unless it was cancelled before it could start."""
        with self._calls:
            self._waiting.discard(call_id)
            if call_id in self._cancelled:
                del self._cancelled[call_id]
                return False
            self._running = (call_id, threading.get_ident())
            return True

    def _stop(self) -> None:
        """Mark the running call finished, withdrawing a cancel's exception not raised yet.

        Under ``_calls``, so no cancel can slip in between; afterwards nothing can
        interrupt what follows the call (restoring the model's state above all).
        """
        with self._calls:
            if self._running is None:
                return
            if self._interrupted:
                _raise_in_thread(self._running[1], None)
            self._running, self._interrupted = None, False
            self._calls.notify_all()

    def _base_model(self) -> Any:
        if self._base_loader is None:
            raise LookupError(
                "This subject model has no base checkpoint, so client.run_base is unavailable; "
                "compare against a control prompt instead."
            )
        if self._base is None:
            self._base = self._base_loader()
            _hide_paths(self._base, None, self.name)
        return self._base

    def cancel(self, call_id: str) -> bool:
        """Stop call ``call_id``: True if it was running or waiting to start, else False.

        A running call gets KeyboardInterrupt at its next Python line (once). A call
        that has not started never will, even one whose request is still on its way:
        the cancel comes on another connection and may overtake it. The id keeps a
        late cancel from hitting another client's call.
        """
        if not call_id:
            return False
        with self._calls:
            running = self._running
            if running is not None and running[0] == call_id:
                if not self._interrupted:  # once: _stop relies on it
                    self._interrupted = True
                    _raise_in_thread(running[1], KeyboardInterrupt)
                return True
            # Ids are random, so one whose call already finished is harmless, just kept a while.
            self._cancelled[call_id] = None
            while len(self._cancelled) > _REMEMBERED_CANCELS:
                del self._cancelled[next(iter(self._cancelled))]
            return call_id in self._waiting

    def wait_stopped(self, call_id: str, timeout: float) -> bool:
        """Whether call ``call_id`` is not running, after waiting up to ``timeout`` s for it."""
        with self._calls:
            return self._calls.wait_for(
                lambda: self._running is None or self._running[0] != call_id, timeout
            )

    def usage(self) -> DeviceUsage:
        """Memory and utilisation of the model's device (no lock: status must not wait)."""
        return probe_device(self.device, self.gpus)

    # --- black-box surface -----------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        num_samples: int = 1,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> str | list[str]:
        """Continue raw text; one string, or a list when ``num_samples`` > 1."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, not {type(prompt).__name__}")
        with self._lock:
            return self._sample(prompt, max_new_tokens, temperature, num_samples, top_p, seed)

    def chat(
        self,
        messages: str | list[dict[str, str]],
        *,
        prefill: str | None = None,
        system: str | None = None,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        num_samples: int = 1,
        top_p: float | None = None,
        seed: int | None = None,
        role: str = "assistant",
    ) -> str | list[str]:
        """The next turn of a conversation, continuing after ``prefill`` if given.

        ``role="assistant"`` samples the model's reply; ``role="user"`` samples the
        *user's* next turn (user-persona sampling). Returns the text generated after
        the prefill (the prefill itself is not repeated).
        """
        if role not in ("assistant", "user"):
            raise ValueError(f"role must be 'assistant' or 'user', not {role!r}")
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if not (
            isinstance(messages, list)
            and all(isinstance(m, dict) and {"role", "content"} <= m.keys() for m in messages)
        ):
            raise TypeError(
                "messages must be a string or a list of {'role': ..., 'content': ...} dicts"
            )
        if system is not None:
            messages = [{"role": "system", "content": system}, *messages]
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                "this model's tokenizer has no chat template: use client.generate(...)"
            )
        if role == "user":
            text = prompting.user_prompt(self.tokenizer, messages)
        else:
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        with self._lock:
            return self._sample(
                text + (prefill or ""),
                max_new_tokens,
                temperature,
                num_samples,
                top_p,
                seed,
                special_tokens=False,
            )

    def _sample(
        self,
        text: str,
        max_new_tokens: int,
        temperature: float,
        num_samples: int,
        top_p: float | None,
        seed: int | None,
        special_tokens: bool = True,
    ) -> str | list[str]:
        tok = self.tokenizer
        # A rendered chat template already holds its special tokens; don't add them twice.
        enc = tok(text, return_tensors="pt", add_special_tokens=special_tokens)
        ids = enc["input_ids"].to(self.model.device)
        mask = enc["attention_mask"].to(self.model.device)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        # Past a learned-position model's context, generate fails deep inside an embedding.
        context = getattr(self.model.config, "max_position_embeddings", None)
        if context:
            if ids.shape[1] >= context:
                raise ValueError(
                    f"the prompt is {ids.shape[1]} tokens; this model's context is {context}"
                )
            max_new_tokens = min(max_new_tokens, context - ids.shape[1])
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": pad}
        greedy = not temperature or temperature <= 0
        if greedy:
            options["do_sample"] = False
        else:
            options.update(
                do_sample=True, temperature=temperature, num_return_sequences=num_samples
            )
            if top_p is not None:
                options["top_p"] = top_p
        if seed is not None:
            torch.manual_seed(seed)
        prompting.quiet_dropped_mask_warning()
        with torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=mask, **options)
        texts = [tok.decode(seq[ids.shape[1] :], skip_special_tokens=True) for seq in out]
        if greedy:  # greedy decoding has one answer; repeat it rather than refuse num_samples
            texts = texts * num_samples
        return texts[0] if num_samples == 1 else texts

    def info(self) -> dict[str, Any]:
        """What the model is (name hidden when asked): device, dtype, size, layers, heads,
        mode."""
        config = self.model.config
        return {
            "model": self.name,
            "mode": self.mode,
            "device": self.device,
            "dtype": self.dtype,
            "parameters": self.parameters,
            "layers": getattr(config, "num_hidden_layers", None),
            "heads": getattr(config, "num_attention_heads", None),
            "hidden_size": getattr(config, "hidden_size", None),
            "vocab_size": getattr(config, "vocab_size", None),
            "architecture": type(self.model).__name__,
            "chat_template": bool(getattr(self.tokenizer, "chat_template", None)),
            "base_model": self._base_loader is not None and self.mode != "blackbox",
        }


def _raise_in_thread(thread_id: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in thread ``thread_id`` at its next Python line; None withdraws it."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), None if exc is None else ctypes.py_object(exc)
    )


# --- what a call may change around the model -----------------------------------------------------


_MISSING = object()
_HOOKS_FLAG = "_output_capturing_hooks_installed"


class _ModelState:
    """Snapshot of hooks, modes and attributes that :meth:`restore` puts back."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.modules = list(model.modules())
        self.hooks = [
            [
                (d, dict(d) if d else None)
                for d in (getattr(m, a, None) for a in _HOOK_DICTS)
                if d is not None
            ]
            for m in self.modules
        ]
        module_mod = torch.nn.modules.module
        self.global_hooks = [
            (d, dict(d))
            for d in (getattr(module_mod, a, None) for a in _GLOBAL_HOOKS)
            if d is not None
        ]
        self.training = [m.training for m in self.modules]
        self.forward_overrides = [m.__dict__.get("forward", _MISSING) for m in self.modules]
        # transformers (5+) installs output-capturing hooks on first use and flags the
        # model; undoing the hooks without the flag would leave hidden_states empty.
        self.hook_flags = [m.__dict__.get(_HOOKS_FLAG, _MISSING) for m in self.modules]
        self.params = list(model.parameters())
        self.requires_grad = [p.requires_grad for p in self.params]
        self.had_grad = [p.grad is not None for p in self.params]
        self.tensor_hooks = [
            [(dict(d) if d else None) for d in (getattr(p, a, None) for a in _TENSOR_HOOKS)]
            for p in self.params
        ]
        self.grad_enabled = torch.is_grad_enabled()
        self.objects = [
            (obj, dict(obj.__dict__))
            for obj in (model.config, getattr(model, "generation_config", None), tokenizer)
            if obj is not None and hasattr(obj, "__dict__")
        ]

    def restore(self) -> None:
        for per_module in self.hooks:
            for current, saved in per_module:
                _restore_dict(current, saved or {})
        for current, saved in self.global_hooks:
            _restore_dict(current, saved)
        for module, training, forward, flag in zip(
            self.modules, self.training, self.forward_overrides, self.hook_flags, strict=True
        ):
            if module.training != training:
                module.training = training
            _restore_attribute(module, "forward", forward)
            _restore_attribute(module, _HOOKS_FLAG, flag)
        for param, requires_grad, had_grad in zip(
            self.params, self.requires_grad, self.had_grad, strict=True
        ):
            if param.requires_grad != requires_grad:
                param.requires_grad_(requires_grad)
            if not had_grad and param.grad is not None:
                param.grad = None  # gradients a technique computed would leak into the next one
        for param, saved_hooks in zip(self.params, self.tensor_hooks, strict=True):
            for attr, saved in zip(_TENSOR_HOOKS, saved_hooks, strict=True):
                current = getattr(param, attr, None)
                if current:
                    _restore_dict(current, saved or {})
        torch.set_grad_enabled(self.grad_enabled)
        for obj, saved in self.objects:
            current = obj.__dict__
            if len(current) != len(saved) or any(
                current.get(k, _MISSING) is not v for k, v in saved.items()
            ):
                current.clear()
                current.update(saved)


def _restore_attribute(obj: Any, name: str, saved: Any) -> None:
    """Put back an instance attribute, or its absence (``_MISSING``)."""
    if obj.__dict__.get(name, _MISSING) is not saved:
        if saved is _MISSING:
            del obj.__dict__[name]
        else:
            obj.__dict__[name] = saved


def _restore_dict(current: dict[Any, Any], saved: dict[Any, Any]) -> None:
    if len(current) != len(saved) or current.keys() != saved.keys():
        current.clear()
        current.update(saved)


# --- results -------------------------------------------------------------------------------------


def _pack_result(value: Any) -> bytes:
    """Pickle a technique's result for the kernel; a clear error for what cannot travel."""
    buffer = io.BytesIO()
    try:
        _ResultPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    except UnsendableResult:
        raise
    except Exception:
        culprit = _find_unpicklable(value)
        raise UnsendableResult(
            f"client.run: the result contains a {type(culprit)}, which cannot be sent back; "
            f"{_PLAIN_HINT}"
        ) from None
    return buffer.getvalue()


class _ResultPickler(cloudpickle.Pickler):
    """cloudpickle, with every tensor sent detached, on CPU, bfloat16 as float32.

    Done while pickling rather than by walking the result first, so tensors inside any
    object (a ModelOutput, a KV cache, a dataclass) are converted too; the kernel may
    have no GPU, and numpy and most notebook tooling have no bfloat16.
    """

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return _sendable_tensor(obj).__reduce_ex__(pickle.HIGHEST_PROTOCOL)
        if isinstance(obj, torch.nn.Module):
            raise UnsendableResult(
                f"client.run: the result contains a {type(obj)}, which should stay in the model "
                f"host; {_PLAIN_HINT}"
            )
        return super().reducer_override(obj)


def _sendable_tensor(obj: torch.Tensor) -> torch.Tensor:
    tensor = obj.detach()
    if tensor.device.type != "cpu":
        tensor = tensor.cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    elif tensor.layout == torch.strided and tensor.untyped_storage().nbytes() > tensor.nbytes:
        tensor = tensor.clone()  # a view would pickle its whole storage (e.g. one weight row)
    return tensor


def _find_unpicklable(obj: Any, depth: int = 0) -> Any:
    children: list[Any] = []
    if isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)
    elif isinstance(obj, dict):
        children = [*obj.keys(), *obj.values()]
    elif depth < 20 and hasattr(obj, "__dict__") and not isinstance(obj, type):
        children = list(vars(obj).values())
    for child in children:
        try:
            cloudpickle.dumps(child)
        except Exception:
            return _find_unpicklable(child, depth + 1)
    return obj


def _hide_paths(model: Any, tokenizer: Any, name: str) -> None:
    """Replace where the weights were loaded from (it can name the secret) by ``name``."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "_name_or_path"):
        config._name_or_path = name
    if hasattr(tokenizer, "name_or_path"):
        with contextlib.suppress(AttributeError):
            tokenizer.name_or_path = name
    for adapter in (getattr(model, "peft_config", None) or {}).values():
        with contextlib.suppress(AttributeError):
            adapter.base_model_name_or_path = name
