"""One way in for options: values parsed as YAML for --set and --option alike, and
one device resolver (densevid.config, densevid.device)."""

import pytest
import torch

from densevid.config import parse_value, read_config_dict
from densevid.device import resolve_device
from densevid.errors import DensevidError


@pytest.mark.parametrize(
    "raw, value",
    [
        ("true", True),
        ("3", 3),
        ("0.5", 0.5),
        ("3e-4", 3e-4),  # a string to YAML 1.1
        ("-1E3", -1000.0),
        ("[a.json, b.json]", ["a.json", "b.json"]),
        ("en", "en"),
        ("{a: 1}", {"a": 1}),
        ("[unclosed", "[unclosed"),
    ],
)
def test_values_are_yaml_with_exponent_numbers(raw, value):
    assert parse_value(raw) == value


def test_overrides_reach_sections_and_name_bad_ones():
    d = read_config_dict(None, ["model.d_model=64", "lr=3e-4"])
    assert d == {"model": {"d_model": 64}, "lr": 3e-4}
    with pytest.raises(DensevidError, match="expected key=value"):
        read_config_dict(None, ["lr"])
    with pytest.raises(DensevidError, match="lr is not a section"):
        read_config_dict(None, ["lr=1", "lr.x=2"])


def test_extract_options_are_parsed_as_run_overrides_are(tmp_path):
    from densevid.cli import _extract_options, build_parser

    argv = ["extract", "v.mp4", "-o", str(tmp_path), "--option", "logmel.fmax=8e3"]
    argv += ["--option", "pixels.tint=true", "--option", "asr.language=en"]
    opts = _extract_options(build_parser().parse_args(argv))
    assert opts["logmel"] == {"fmax": 8000.0}
    assert opts["pixels"]["tint"] is True and opts["asr"]["language"] == "en"


def test_one_device_resolver():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == (
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    with pytest.raises(DensevidError, match="train config: unknown device 'tpu'"):
        resolve_device("tpu", "train config")
    if not torch.cuda.is_available():
        with pytest.raises(DensevidError, match="clip: device=cuda but no CUDA GPU"):
            resolve_device("cuda", "clip")
