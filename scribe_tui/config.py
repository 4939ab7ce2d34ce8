"""User defaults from a TOML file; command-line flags override them."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from scribe_tui.paths import config_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """A config file that cannot be used; the message is one line saying how to fix it."""


@dataclass
class Config:
    """Defaults for ``investigate`` and friends (the ``[defaults]`` table of config.toml)."""

    agent: str | None = None  # None: claude when ANTHROPIC_API_KEY is set, else autopilot
    model: str = "organism:taboo"
    mode: str = "local"
    claude_model: str | None = None  # None: the provider's default
    thinking_budget: int | None = None
    notebooks_dir: str = "notebooks"
    cell_timeout: float = 600.0
    token_budget: int = 2000
    checkpoint_every: int = 10
    confirm_checkpoints: bool = False
    max_turns: int | None = None
    max_cost: float | None = None
    max_minutes: float | None = None
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 0
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    source: Path | None = None


def load_config(path: Path | None = None) -> Config:
    """Read the config file (default: the platform's user config dir); missing file → defaults."""
    path = path or config_file()
    if not path.exists():
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix or delete the file") from exc
    defaults: dict[str, Any] = data.get("defaults", {})
    prices = data.get("prices", {})
    known = {f.name for f in fields(Config)} - {"prices", "source"}
    unknown = sorted(set(defaults) - known)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)} in [defaults]; "
            f"known keys: {', '.join(sorted(known))}"
        )
    config = Config(**defaults, prices=prices, source=path)
    for f in fields(Config):
        value = getattr(config, f.name)
        default = getattr(Config(), f.name)
        if value is not None and default is not None and f.name not in ("prices", "source"):
            expected = float if isinstance(default, float) else type(default)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                setattr(config, f.name, float(value))
            elif not isinstance(value, expected):
                raise ConfigError(
                    f"{path}: [defaults] {f.name} should be {expected.__name__}, got {value!r}"
                )
    return config
