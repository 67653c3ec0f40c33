import math
import re

import pytest

from featinv.config import InvertConfig, from_dict, load_config, to_yaml
from featinv.errors import ConfigError


def test_yaml_roundtrip_and_cli_overrides(tmp_path):
    config = InvertConfig(layers=("conv3_1", "pool5:2"), lr=1e-2, schedule="cosine:warmup=5")
    path = tmp_path / "c.yaml"
    path.write_text(to_yaml(config))
    assert load_config(path) == config
    assert load_config(path, lr=0.3, steps=None).lr == 0.3


def test_yaml_scientific_notation_strings_are_numbers(tmp_path):
    (tmp_path / "c.yaml").write_text("lr: 1e-2\nsteps: '50'\nclamp: 'no'\n")
    config = load_config(tmp_path / "c.yaml")
    assert (config.lr, config.steps, config.clamp) == (0.01, 50, False)


def test_compile_accepts_yaml_booleans_and_modes(tmp_path):
    for text, mode in [("true", "default"), ("off", None), ("reduce-overhead", "reduce-overhead")]:
        (tmp_path / "c.yaml").write_text(f"compile: {text}\n")
        assert load_config(tmp_path / "c.yaml").compile == mode


def test_unknown_key_names_the_closest(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'tv_weight'.*Did you mean .*'tv_beta'"):
        from_dict({"tv_weight": 1})
    (tmp_path / "c.yaml").write_text("stepz: 3\n")
    with pytest.raises(ConfigError, match="Did you mean 'steps'"):
        load_config(tmp_path / "c.yaml")


@pytest.mark.parametrize(
    "field,value",
    [
        ("lr", math.nan),
        ("lr", 0.0),
        ("lr", -1.0),
        ("lr", math.inf),
        ("steps", 0),
        ("steps", -5),
        ("size", 0),
        ("size", -1),
        ("tv", -1.0),
        ("optimizer", "adamw"),
        ("schedule", "linear"),
        ("snapshot_every", -1),
        ("tv_kind", "aniso"),
        ("compile", "fast"),
    ],
)
def test_bad_values_fail_early(field, value):
    with pytest.raises(ConfigError, match=rf"{field}.*{re.escape(repr(value))}"):  # names field and value
        InvertConfig(**{field: value})


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("lr: [1\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(tmp_path / "broken.yaml")
