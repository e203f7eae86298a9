"""The operator's settings: every environment variable parses into the typed value, or fails naming itself."""

from __future__ import annotations

from typing import Any

import pytest

from videojob.controller.settings import Settings, describe, priority_band


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {"namespaces": [], "max_running": 10, "max_running_gpu": 1, "default_ttl_seconds": 7 * 86_400}),
        ({"VIDEOJOB_NAMESPACES": " media, ads ,,"}, {"namespaces": ["media", "ads"], "clusterwide": False}),
        ({"VIDEOJOB_NAMESPACES": ""}, {"namespaces": [], "clusterwide": True}),
        ({"VIDEOJOB_MAX_RUNNING": "4", "VIDEOJOB_MAX_RUNNING_GPU": "0"}, {"max_running": 4, "max_running_gpu": 0}),
        ({"VIDEOJOB_ALLOW_HTTP": "yes"}, {"allow_http": True}),
        ({"VIDEOJOB_ALLOW_HTTP": "OFF"}, {"allow_http": False}),
        ({"VIDEOJOB_TRANSCODER_COMMAND": '["python3", "-m", "x y"]'}, {"transcoder_command": ["python3", "-m", "x y"]}),
        (
            {"VIDEOJOB_TRANSCODER_COMMAND": "videojob-transcode --flag 'a b'"},
            {"transcoder_command": ["videojob-transcode", "--flag", "a b"]},
        ),
        ({"VIDEOJOB_GPU_NODE_SELECTOR": '{"pool": "gpu"}'}, {"gpu_node_selector": {"pool": "gpu"}}),
        ({"VIDEOJOB_DEFAULT_TTL_SECONDS": "60"}, {"default_ttl_seconds": 60}),
        ({"VIDEOJOB_DEFAULT_TTL_SECONDS": "Never"}, {"default_ttl_seconds": None}),
        ({"VIDEOJOB_DEFAULT_TTL_SECONDS": ""}, {"default_ttl_seconds": 7 * 86_400}),
        ({"S3_ENDPOINT_URL": "http://127.0.0.1:9000"}, {"s3_endpoint_url": "http://127.0.0.1:9000"}),
        ({"S3_ENDPOINT_URL": "http://a", "VIDEOJOB_S3_ENDPOINT_URL": "http://b"}, {"s3_endpoint_url": "http://b"}),
        ({"VIDEOJOB_SOMETHING_FOR_THE_TRANSCODER": "x"}, {"max_running": 10}),
        (
            {
                "VIDEOJOB_MAX_RUNNING_PER_NAMESPACE": "3",
                "VIDEOJOB_NAMESPACE_MAX_RUNNING": '{"media": 5, "ads": 0}',
                "VIDEOJOB_NAMESPACE_WEIGHTS": '{"media": 2.5}',
                "VIDEOJOB_FAIR_SHARING": "false",
            },
            {
                "max_running_per_namespace": 3,
                "namespace_max_running": {"media": 5, "ads": 0},
                "namespace_weights": {"media": 2.5},
                "fair_sharing": False,
            },
        ),
    ],
    ids=[
        "defaults",
        "namespaces are split and trimmed",
        "empty namespaces watch the cluster",
        "limits",
        "bool yes",
        "bool OFF",
        "command as JSON",
        "command split like a shell, never run by one",
        "JSON object",
        "TTL seconds",
        "TTL never",
        "empty means the default",
        "S3 endpoint falls back to S3_ENDPOINT_URL",
        "the operator's own endpoint wins",
        "unknown VIDEOJOB_ variables are ignored",
        "sharing between namespaces",
    ],
)
def test_environment_parses_into_settings(environ: dict[str, str], expected: dict[str, Any]) -> None:
    settings = Settings.from_env(environ)
    for name, value in expected.items():
        assert getattr(settings, name) == value, name


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"VIDEOJOB_MAX_RUNNING": "0"}, "VIDEOJOB_MAX_RUNNING"),
        ({"VIDEOJOB_MAX_RUNNING": "ten"}, "VIDEOJOB_MAX_RUNNING"),
        ({"VIDEOJOB_ALLOW_HTTP": "maybe"}, "VIDEOJOB_ALLOW_HTTP"),
        ({"VIDEOJOB_GPU_TOLERATIONS": "[{"}, "VIDEOJOB_GPU_TOLERATIONS"),
        ({"VIDEOJOB_DEFAULT_TTL_SECONDS": "-5"}, "VIDEOJOB_DEFAULT_TTL_SECONDS"),
        ({"VIDEOJOB_DEFAULT_TTL_SECONDS": "forever"}, "VIDEOJOB_DEFAULT_TTL_SECONDS"),
        ({"VIDEOJOB_LOG_FORMAT": "xml"}, "VIDEOJOB_LOG_FORMAT"),
        ({"VIDEOJOB_TRANSCODER_PULL_POLICY": "Sometimes"}, "VIDEOJOB_TRANSCODER_PULL_POLICY"),
        ({"VIDEOJOB_NAMESPACE_WEIGHTS": '{"media": 0}'}, "VIDEOJOB_NAMESPACE_WEIGHTS"),
        ({"VIDEOJOB_NAMESPACE_MAX_RUNNING": '{"Media_Team": 2}'}, "VIDEOJOB_NAMESPACE_MAX_RUNNING"),
        ({"VIDEOJOB_NAMESPACE_MAX_RUNNING": '{"media": -1}'}, "VIDEOJOB_NAMESPACE_MAX_RUNNING"),
        ({"VIDEOJOB_NAMESPACE_MAX_RUNNING": '{"media": "lots"}'}, "VIDEOJOB_NAMESPACE_MAX_RUNNING"),
    ],
    ids=[
        "below bound",
        "not a number",
        "not a bool",
        "bad JSON",
        "negative TTL",
        "unknown word",
        "enum",
        "policy",
        "weight 0",
        "not a namespace name",
        "negative limit",
        "limit not a number",
    ],
)
def test_a_bad_value_fails_naming_its_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Settings.from_env(environ)


@pytest.mark.parametrize(
    ("priority", "band"), [(1, "urgent"), (3, "urgent"), (4, "normal"), (7, "normal"), (8, "low"), (10, "low")]
)
def test_priority_bands_follow_the_seeds(priority: int, band: str) -> None:
    assert priority_band(priority) == band
    assert Settings().priority_class(priority) == f"videojob-{band}"


def test_an_empty_priority_class_name_sets_none() -> None:
    settings = Settings.from_env({"VIDEOJOB_PRIORITY_CLASSES": '{"urgent": "", "normal": "", "low": ""}'})
    assert settings.priority_class(1) is None


def test_gpu_resources_add_the_gpu_limit_to_a_fresh_copy() -> None:
    settings = Settings.from_env({"VIDEOJOB_GPU_RESOURCE": "amd.com/gpu"})
    gpu = settings.resources("nvidia")
    assert gpu["limits"]["amd.com/gpu"] == 1
    gpu["limits"]["memory"] = "1Ti"  # callers may change what they get
    assert settings.resources("nvidia")["limits"]["memory"] != "1Ti"
    assert "amd.com/gpu" not in settings.resources("cpu").get("limits", {})


def test_every_setting_has_its_own_variable_and_is_documented() -> None:
    names = Settings.env_names()
    assert len(set(names.values())) == len(names)
    table = describe()
    for var in names.values():
        assert f"`{var}`" in table
