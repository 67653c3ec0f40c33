"""The CLI's options and help(featinv.invert) agree with the config: every field has a flag, and
what the help says the default is, is what the code does (featinv.options generates both)."""

import re

import pytest

from featinv import cli, options
from featinv.config import AUTO, FIELDS, InvertConfig
from featinv.optim.defaults import resolve_defaults
from featinv.specs import CHROMA_PARAMS

STRIDES = (1, 2, 3, 4, 6, 8, 16, 32, 64)


def config_actions(command):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {a.dest: a for a in sub._actions if a.dest in FIELDS}


def sample_text(name):
    kind = options.kind(name)
    return {int: "3", float: "0.5"}.get(kind, "pixel" if name == "param" else "x")


@pytest.mark.parametrize("command", ["invert", "sweep"])
def test_every_config_field_is_an_option_that_reaches_the_config(command):
    actions = config_actions(command)
    assert set(actions) == set(FIELDS)
    parser = cli.build_parser()
    head = [command, "photo.png"] if command == "invert" else [command, "sweep.yaml"]
    for name in FIELDS:
        if name == "image" and command == "invert":
            assert cli._explicit(parser.parse_args(head))["image"] == "photo.png"
            continue
        if options.kind(name) is bool:
            assert cli._explicit(parser.parse_args([*head, options.flag(name)]))[name] is True
            assert cli._explicit(parser.parse_args([*head, "--no-" + options.flag(name)[2:]]))[name] is False
            continue
        explicit = cli._explicit(parser.parse_args([*head, options.flag(name), sample_text(name)]))
        assert str(explicit[name]) == sample_text(name), name


def test_the_parsers_help_is_the_generated_help():
    for command in ("invert", "sweep"):
        for name, action in config_actions(command).items():
            assert action.help.startswith(options.help_text(name).replace("%", "%%")), (command, name)


def said_by_stride(help_text, stride):
    """What the help says a layer of this stride gets, read as a user reads it."""
    listed = re.search(r"stride: (.+?)(?:;|\)$)", help_text).group(1)
    for part in listed.split(", "):
        if part.endswith(" at every stride"):
            return part.removesuffix(" at every stride")
        if match := re.fullmatch(r"(.+) up to stride (\d+)", part):
            if stride <= int(match.group(2)):
                return match.group(1)
        elif match := re.fullmatch(r"(.+) deeper", part):
            return match.group(1)
    raise AssertionError(f"no value for stride {stride} in {help_text!r}")


def shown(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_the_help_states_the_default_the_code_uses():
    plain = InvertConfig()
    for name in FIELDS:
        text = options.help_text(name)
        if name in AUTO:
            continue
        value = getattr(plain, name)
        if value is None:
            assert "unset:" in text, (name, text)  # the meaning says what unset does
        elif isinstance(value, bool):
            assert f"(default: {'on' if value else 'off'})" in text, name
        else:
            assert f"(default: {shown(value)})" in text, name
    for stride in STRIDES:
        for start in (InvertConfig(), InvertConfig(init="grey"), InvertConfig(param="pyramid")):
            chosen = resolve_defaults(start, stride)
            for name in AUTO:
                if getattr(start, name) is not None:
                    continue
                text, value = options.help_text(name), shown(getattr(chosen, name))
                if name == "lr" and chosen.param == "dip":
                    assert f"; {value} for dip" in text, (stride, text)
                elif name == "chroma_scale" and chosen.param not in CHROMA_PARAMS:
                    assert f"{chosen.param}" in text.split("only ")[-1] and f": {value})" in text, (stride, text)
                elif name in ("transforms", "jitter_off_last") and chosen.param != "dip":
                    assert f"with dip only (another param: {value})" in text, (name, stride, text)
                elif name == "param" and start.init == "grey" and value != said_by_stride(text, stride):
                    assert f"; {value} instead of dip for a run that starts from an image" in text, (stride, text)
                else:
                    assert said_by_stride(text, stride) == value, (name, stride, start, text)


def test_the_help_lists_what_the_owners_accept(tiny_net):
    from featinv.files import SAMPLES
    from featinv.nets.models import available_models
    from featinv.nets.preprocess import PRESETS
    from featinv.optim.recipes import recipe_values

    offline = [m for m in available_models() if m.endswith("_offline")]
    assert (
        offline and all(m in options.help_text("model") for m in offline) and "timm:NAME" in options.help_text("model")
    )
    assert all(f"{prefix}NAME" in options.help_text("image") for prefix in SAMPLES)
    assert all(f" {name}" in options.help_text("preprocess") for name in PRESETS)
    for name in options.choices("recipe"):
        values, _ = recipe_values(name, tiny_net, ["relu2"], 16)  # every recipe offered is one the code knows
        assert values["recipe"] == name
    for name in FIELDS:
        for choice in options.choices(name):
            assert choice in options.help_text(name), (name, choice)
            if name != "preprocess":  # a preset is checked against the weights when the model loads
                InvertConfig(**{name: choice})


def test_help_of_invert_lists_every_option_with_its_default():
    import featinv

    doc = " ".join(featinv.invert.__doc__.split())
    for name in FIELDS:
        assert f"{name}: {' '.join(options.help_text(name).split())}" in doc, name
