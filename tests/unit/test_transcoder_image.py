"""Invariants of the two Dockerfiles (transcoder-image/Dockerfile and the operator's Dockerfile), checked by
parsing them, so they hold without a Docker engine (`make images` builds both where there is one)."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "transcoder-image" / "Dockerfile"
OPERATOR_DOCKERFILE = REPO / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (enough of the Dockerfile grammar here)."""
    out: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continued instruction are ignored by Docker too
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return out


INSTRUCTIONS = parse_dockerfile(DOCKERFILE.read_text())
OPERATOR_INSTRUCTIONS = parse_dockerfile(OPERATOR_DOCKERFILE.read_text())
# The invariants both images share are checked on both: (Dockerfile, its instructions, its entrypoint).
BOTH = pytest.mark.parametrize(
    ("dockerfile", "instructions", "entrypoint"),
    [
        pytest.param(DOCKERFILE, INSTRUCTIONS, "videojob-transcode", id="transcoder"),
        pytest.param(OPERATOR_DOCKERFILE, OPERATOR_INSTRUCTIONS, "videojob-operator", id="operator"),
    ],
)


def _stages(instructions: list[Instruction] = INSTRUCTIONS) -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


FINAL = _stages()[-1]


def _global_args(instructions: list[Instruction] = INSTRUCTIONS) -> dict[str, str]:
    args: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG" and "=" in ins.args:
            name, _, value = ins.args.partition("=")
            args[name] = value
    return args


def _env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword == "ENV":
            for name, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", ins.args):
                env[name] = value
    return env


@BOTH
def test_the_parser_sees_the_whole_file(dockerfile: Path, instructions: list[Instruction], entrypoint: str) -> None:
    keywords = [ins.keyword for ins in instructions]
    assert keywords.count("FROM") == 2
    assert keywords[-1] == "ENTRYPOINT"
    assert set(keywords) <= {"ARG", "FROM", "RUN", "COPY", "ENV", "USER", "WORKDIR", "ENTRYPOINT", "LABEL", "EXPOSE"}


@BOTH
def test_builds_with_the_builtin_frontend(dockerfile: Path, instructions: list[Instruction], entrypoint: str) -> None:
    """No `# syntax=` line: BuildKit would fetch that frontend from a registry, which hack/build-images.sh has
    none of; the builtin frontend knows everything used here (RUN --mount=type=secret included)."""
    assert not re.search(r"^#\s*syntax\s*=", dockerfile.read_text(), re.MULTILINE | re.IGNORECASE)


@BOTH
def test_base_image_is_an_argument(dockerfile: Path, instructions: list[Instruction], entrypoint: str) -> None:
    """BASE_IMAGE is how `make images` hands in its locally made Debian base; every stage starts from it."""
    assert _global_args(instructions)["BASE_IMAGE"].startswith("debian:bookworm")
    for ins in instructions:
        if ins.keyword == "FROM":
            assert ins.args.split()[0] == "${BASE_IMAGE}", f"line {ins.line}: {ins.args}"


@BOTH
def test_pip_gets_an_optional_ca_bundle(dockerfile: Path, instructions: list[Instruction], entrypoint: str) -> None:
    """Every pip install may be given a CA bundle (BuildKit secret `ca-bundle`); none is required, so a plain
    `docker build` works unchanged, and pip never turns verification off."""
    pip_runs = [ins for ins in instructions if ins.keyword == "RUN" and "pip install" in ins.args]
    assert pip_runs
    for ins in pip_runs:
        assert re.match(r"--mount=type=secret,id=ca-bundle(\s|,)", ins.args), f"line {ins.line}: {ins.args[:80]}"
        assert "required=true" not in ins.args.split()[0]
        assert "PIP_CERT=/run/secrets/ca-bundle" in ins.args
        assert "--trusted-host" not in ins.args


@BOTH
def test_base_images_are_pinned_by_tag_or_digest(
    dockerfile: Path, instructions: list[Instruction], entrypoint: str
) -> None:
    args = _global_args(instructions)
    for ins in instructions:
        if ins.keyword != "FROM":
            continue
        image = ins.args.split()[0]
        image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], image)
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"line {ins.line}: {image} has no tag"
        assert tag not in ("latest", ""), f"line {ins.line}: {image} is not pinned"
        assert tag.startswith("bookworm"), f"line {ins.line}: {image} is not Debian bookworm"


@BOTH
def test_runs_as_a_numeric_non_root_user(dockerfile: Path, instructions: list[Instruction], entrypoint: str) -> None:
    final = _stages(instructions)[-1]
    users = [ins.args for ins in final if ins.keyword == "USER"]
    assert users, "the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) == 65532, users[-1]
    assert not gid or (gid.isdigit() and int(gid) != 0), users[-1]
    after_user = final[final.index(next(i for i in final if i.keyword == "USER")) :]
    assert not any(i.keyword == "RUN" for i in after_user), "the image is finished before USER: no RUN after it"


@BOTH
def test_entrypoint_is_the_runner_in_exec_form(
    dockerfile: Path, instructions: list[Instruction], entrypoint: str
) -> None:
    final = _stages(instructions)[-1]
    entrypoints = [ins for ins in final if ins.keyword == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    assert json.loads(entrypoints[0].args) == [entrypoint]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint in scripts
    # The venv's bin is on PATH, and the interpreter is Debian's (the venv was made with the same base).
    assert _env(final)["PATH"].startswith("/opt/videojob/bin:")
    final_runs = " ".join(ins.args for ins in final if ins.keyword == "RUN")
    assert re.search(r"apt-get install[^&]*--no-install-recommends[^&]*\bpython3\b", final_runs)
    assert any(
        ins.keyword == "COPY" and ins.args.split() == ["--from=build", "/opt/videojob", "/opt/videojob"]
        for ins in final
    )


@pytest.mark.parametrize(
    ("pattern", "what"),
    [
        (r"(curl|wget)[^|;&]*\|\s*(sudo\s+)?(ba|z|da)?sh\b", "piping a download into a shell"),
        (r"\bsudo\b", "sudo"),
        (r"chmod\s+(-R\s+)?[0-7]*7[0-7]?\s", "world-writable files"),
        (r"--allow-unauthenticated|--trusted-host|--no-check-certificate|-k\b.*https?://", "unverified downloads"),
    ],
)
@pytest.mark.parametrize("instructions", [INSTRUCTIONS, OPERATOR_INSTRUCTIONS], ids=["transcoder", "operator"])
def test_no_unsafe_run_commands(pattern: str, what: str, instructions: list[Instruction]) -> None:
    for ins in instructions:
        if ins.keyword == "RUN":
            assert not re.search(pattern, ins.args), f"line {ins.line}: {what}: {ins.args}"


@BOTH
def test_no_remote_add(dockerfile: Path, instructions: list[Instruction], entrypoint: str) -> None:
    for ins in instructions:
        if ins.keyword == "ADD":
            assert not re.search(r"(https?|git|ftp)://|git@", ins.args), f"line {ins.line}: ADD of a URL"


def test_environment_suits_a_read_only_root_filesystem() -> None:
    env = _env(FINAL)
    workdirs = [ins.args for ins in FINAL if ins.keyword == "WORKDIR"]
    assert workdirs[-1] == "/work"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    for name in ("HOME", "TMPDIR", "XDG_CACHE_HOME"):
        assert env[name] == "/work" or env[name].startswith(("/work/", "/tmp")), f"{name}={env[name]}"
    assert env["VIDEOJOB_WORKDIR"] == "/work"
    assert env["HF_HUB_OFFLINE"] == "1"


def test_nvenc_needs_the_video_driver_capability_and_no_gpu_is_exposed_by_default() -> None:
    env = _env(FINAL)
    assert {"compute", "video", "utility"} <= set(env["NVIDIA_DRIVER_CAPABILITIES"].split(","))
    assert "NVIDIA_VISIBLE_DEVICES" not in env


def test_installs_ffmpeg_fonts_and_the_package_with_speech_to_text() -> None:
    runs = " ".join(ins.args for ins in INSTRUCTIONS if ins.keyword == "RUN")
    final_runs = " ".join(ins.args for ins in FINAL if ins.keyword == "RUN")
    assert re.search(r"apt-get install[^&]*--no-install-recommends[^&]*\bffmpeg\b", final_runs)
    assert "fonts-dejavu-core" in final_runs
    assert "rm -rf /var/lib/apt/lists/*" in final_runs
    assert 'extras="stt"' in runs and 'extras="stt,stt-model"' in runs
    assert re.search(r"ARG WITH_BUNDLED_MODEL=false", DOCKERFILE.read_text())
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"stt", "stt-model"} <= set(extras)


def test_the_build_context_is_limited_to_the_package() -> None:
    ignore = (REPO / "transcoder-image" / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*")] == "*"
    copied = [ins.args.split()[:-1] for ins in INSTRUCTIONS if ins.keyword == "COPY" and "--from" not in ins.args]
    for source in (s for sources in copied for s in sources):
        assert f"!{source}" in ignore or f"!{source.rstrip('/')}/" in ignore, f"{source} is excluded by the ignore file"


def test_the_operator_suits_a_read_only_root_filesystem_and_installs_no_extras() -> None:
    final = _stages(OPERATOR_INSTRUCTIONS)[-1]
    env = _env(final)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    for name in ("HOME", "TMPDIR"):
        assert env[name].startswith("/tmp"), f"{name}={env[name]}"  # the chart's only writable mount
    pip = [ins.args for ins in OPERATOR_INSTRUCTIONS if ins.keyword == "RUN" and "pip install" in ins.args]
    assert len(pip) == 1 and re.search(r"pip install [^&]*/src(\s|$)", pip[0]), "the operator installs no extras"


def test_the_operator_build_context_leaves_out_local_state() -> None:
    ignore = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".testenv", "**/__pycache__"} <= set(ignore)


def test_parser_joins_continuations_and_skips_comments() -> None:
    parsed = parse_dockerfile("# c\nFROM a:1 AS b\nRUN x \\\n  # inner\n  && y\n\nUSER 1\n")
    assert parsed == [Instruction("FROM", "a:1 AS b", 2), Instruction("RUN", "x  && y", 3), Instruction("USER", "1", 7)]
