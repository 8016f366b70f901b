"""The training settings' schema, its argparse flags and the preset factories (core/training/config.py)."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from napari_dewedge.core import device as device_module
from napari_dewedge.core.training import (
    PRESETS,
    QUICK_FLOAT32_CPU_WIDTH,
    Setting,
    TrainingConfig,
    add_arguments,
    config_overrides,
    machine_settings,
    quick,
    settings_schema,
    standard,
    thorough,
)


def _parser(names=None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="test", exit_on_error=False)
    add_arguments(parser, names)
    return parser


def test_every_field_is_documented() -> None:
    for f in fields(TrainingConfig):
        meta = f.metadata
        assert meta.get("help") and meta["help"].endswith("."), f.name
        assert meta.get("label"), f.name
        assert isinstance(meta.get("advanced"), bool), f.name
    schema = settings_schema()
    names = [s.name for s in schema]
    assert {"unet_depth", "unet_width", "subtomo_size", "noise_scale", "seed", "energy_objective"} <= set(names)
    assert not {"unet", "adam_betas", "num_threads", "checkpoint_every_s"} & set(names)
    for s in schema:
        assert isinstance(s, Setting) and s.type in (int, float, str, bool) and s.help and s.label
        if s.optional:
            assert s.none_text, s.name
        if s.type in (int, float) and s.name != "device":
            assert s.minimum is not None, s.name
    by_name = {s.name: s for s in schema}
    assert by_name["noise_scale"].none_text == "auto (estimated)" and by_name["seed"].none_text == "random"
    assert by_name["energy_objective"].choices == ("gan", "wgan-gp")
    assert by_name["noise_model"].choices == ("auto", "white", "wedge", "none")
    assert by_name["subtomo_size"].default == 32 and by_name["unet_depth"].default == 3
    # the simple form: what the napari widget shows
    simple = {s.name for s in schema if not s.advanced}
    assert simple == {"subtomo_size", "n_subtomos", "steps", "time_budget_s", "batch_size", "lambda_consistency",
                      "noise_scale", "energy_objective", "device", "seed", "unet_depth", "unet_width"}


@pytest.mark.parametrize(
    "name,bad",
    [("subtomo_size", 4), ("steps", 0), ("lr", 0.0), ("warmup_fraction", 0.95), ("lambda_final", 1.5),
     ("noise_scale", -0.1), ("sigma_n", 0.0), ("seed", -1), ("preview_every", -1), ("energy_width", 0)],
)
def test_out_of_range_values_are_refused_by_config_and_flag(name: str, bad: float) -> None:
    with pytest.raises(ValueError, match=name):
        TrainingConfig(**{name: bad})
    setting = {s.name: s for s in settings_schema()}[name]
    with pytest.raises(argparse.ArgumentError, match=f"{setting.flag}.*{name}"):
        _parser().parse_args([setting.flag, str(bad)])


def test_unet_pseudo_settings_are_range_checked() -> None:
    with pytest.raises(argparse.ArgumentError, match="unet_depth"):
        _parser().parse_args(["--unet-depth", "7"])
    with pytest.raises(ValueError, match="unet"):
        TrainingConfig(unet={"depth": 7})
    with pytest.raises(argparse.ArgumentError, match="unet_width"):
        _parser().parse_args(["--unet-width", "0"])


def test_flags_give_overrides_for_the_preset() -> None:
    parser = _parser()
    assert config_overrides(parser.parse_args([])) == {}
    args = parser.parse_args(["--subtomo-size", "16", "--energy-objective", "gan", "--noise-scale", "auto",
                              "--seed", "random", "--unet-depth", "1", "--unet-width", "4", "--no-lambda-decay",
                              "--lr", "2e-3"])
    overrides = config_overrides(args)
    assert overrides == {"subtomo_size": 16, "energy_objective": "gan", "noise_scale": None, "seed": None,
                         "unet": {"depth": 1, "width": 4}, "lambda_decay": False, "lr": 2e-3}
    cfg = TrainingConfig.preset("quick", **overrides)
    assert cfg.unet == {"depth": 1, "width": 4, "norm": "batch", "residual": True}
    assert cfg.steps == PRESETS["quick"]["steps"] and cfg.seed is None and not cfg.lambda_decay
    with pytest.raises(argparse.ArgumentError, match="invalid choice"):
        parser.parse_args(["--energy-objective", "hinge"])
    with pytest.raises(argparse.ArgumentError, match="steps must be an integer"):
        parser.parse_args(["--steps", "1.5"])
    only = _parser(["steps", "seed"])
    assert config_overrides(only.parse_args(["--steps", "3"])) == {"steps": 3}
    assert only.parse_known_args(["--subtomo-size", "16"])[1] == ["--subtomo-size", "16"]
    with pytest.raises(ValueError, match="unknown training setting"):
        add_arguments(argparse.ArgumentParser(), ["stepz"])


def test_setting_reads_and_writes_config_values() -> None:
    by_name = {s.name: s for s in settings_schema()}
    cfg = TrainingConfig.preset("standard")
    assert by_name["unet_width"].value_in(cfg) == 32 and by_name["steps"].value_in(cfg) == 3000
    assert by_name["unet_width"].override(8) == {"unet": {"width": 8}}
    by_name["steps"].validate(5)
    with pytest.raises(ValueError, match="steps"):
        by_name["steps"].validate(0)


@pytest.mark.parametrize("native", [True, False])
def test_the_quick_preset_is_narrower_on_a_float32_cpu(monkeypatch, native: bool) -> None:
    monkeypatch.setattr(device_module, "_CPU_BF16", native)
    fitted = TrainingConfig.preset("quick", machine="cpu")
    width = PRESETS["quick"]["unet"]["width"] if native else QUICK_FLOAT32_CPU_WIDTH
    assert fitted.unet == {**PRESETS["quick"]["unet"], "width": width}
    assert fitted.replace(unet=PRESETS["quick"]["unet"]) == TrainingConfig.preset("quick")  # nothing else moves
    assert machine_settings("standard", "cpu") == machine_settings("thorough", "cpu") == {}
    # the user's settings go over the machine's, a U-Net setting merged with them
    assert TrainingConfig.preset("quick", machine="cpu", unet={"width": 32}).unet["width"] == 32
    assert TrainingConfig.preset("quick", machine="cpu", unet={"depth": 1}).unet == {
        **PRESETS["quick"]["unet"], "depth": 1, "width": width}


def test_preset_factories_match_the_named_presets() -> None:
    assert quick() == TrainingConfig.preset("quick")
    assert standard(steps=7) == TrainingConfig.preset("standard", steps=7)
    assert thorough(unet={"width": 8}).unet["depth"] == 4
    with pytest.raises(ValueError, match="unknown training setting"):
        quick(stepz=3)
