"""Condition types and reasons are declared once (videojob.api.conditions): the code names reasons only by the
`Reason` enum (no literal strings), the docs list them all, and a spec error the API server let through ends as
bad input (65), never internal (70)."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from videojob.api import generate
from videojob.api.colors import CSS_COLORS
from videojob.api.conditions import CONDITION_DESCRIPTIONS, REASON_DESCRIPTIONS, ConditionType, Reason
from videojob.api.models import Color, Text
from videojob.api.runtime import ExitCode
from videojob.transcoder import cli

PACKAGE = REPO / "operator" / "videojob"
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
CAMEL_WORD = re.compile(r"^[A-Z][a-z]+[A-Za-z0-9]*$")  # not "If-Range" (a header), not "GET"


def _strings(node: ast.AST | None) -> Iterator[str]:
    """String constants of an expression, through tuples, lists, sets, conditional expressions and dict values."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for item in node.elts:
            yield from _strings(item)
    elif isinstance(node, ast.IfExp):
        yield from _strings(node.body)
        yield from _strings(node.orelse)
    elif isinstance(node, ast.Dict):
        for value in node.values:
            yield from _strings(value)


def _is_reason_target(target: ast.AST) -> bool:
    """`reason = ...`, `self.reason = ...`, `new["reason"] = ...`, or one of those inside a tuple target."""
    if isinstance(target, ast.Name):
        return target.id in ("reason", "NVENC_UNAVAILABLE", "_EXIT_REASONS", "_STUCK")
    if isinstance(target, ast.Attribute):
        return target.attr == "reason"
    if isinstance(target, ast.Subscript):
        return isinstance(target.slice, ast.Constant) and target.slice.value == "reason"
    return False


def used_reasons(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, reason) for every literal reason in a module: `reason=` arguments, assignments to a reason (also
    inside tuple assignments), functions whose name says they return one, and Event tuples/calls."""
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "reason":
            yield from ((node.value.lineno, s) for s in _strings(node.value))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for sub, value in zip(target.elts, node.value.elts, strict=False):
                        if _is_reason_target(sub):
                            yield from ((node.lineno, s) for s in _strings(value))
                elif _is_reason_target(target):
                    yield from ((node.lineno, s) for s in _strings(node.value))
        elif isinstance(node, ast.FunctionDef) and "reason" in node.name:
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return):
                    yield from ((ret.lineno, s) for s in _strings(ret.value))
        elif isinstance(node, ast.FunctionDef) and "tuple[str, str]" in ast.unparse(node.returns or ast.Constant(0)):
            for ret in ast.walk(node):  # functions returning (reason, message): a CamelCase word first
                if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Tuple):
                    yield from ((ret.lineno, s) for s in _strings(ret.value.elts[0]) if CAMEL_WORD.match(s))
        elif (
            isinstance(node, ast.Tuple)
            and len(node.elts) >= 2
            and _strings(node.elts[0])
            and any(s in ("Normal", "Warning") for s in _strings(node.elts[0]))
        ):  # an Event: (type, reason, message)
            yield from ((node.lineno, s) for s in _strings(node.elts[1]))
        elif isinstance(node, ast.Call) and "create_event" in ast.unparse(node.func) + " ".join(
            ast.unparse(a) for a in node.args[:1]
        ):
            for index, arg in enumerate(node.args):
                if any(s in ("Normal", "Warning") for s in _strings(arg)) and index + 1 < len(node.args):
                    yield from ((node.lineno, s) for s in _strings(node.args[index + 1]))


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "conditions.py")


def reason_members(tree: ast.AST) -> set[str]:
    """The values of every `Reason.NAME` a module refers to."""
    return {
        Reason[node.attr].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Reason"
    }


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_the_code_names_reasons_by_the_enum_not_by_literals(path: Path) -> None:
    literals = [
        (line, reason)
        for line, reason in used_reasons(ast.parse(path.read_text()))
        if reason not in ("Normal", "Warning")
    ]
    assert not literals, f"{path.name}: write videojob.api.conditions.Reason members, not literal reasons: {literals}"


@pytest.mark.parametrize(
    "code",
    [
        'raise BadInput("no such object", reason="InputNotFound")',
        'reason = "InputNotFound"',
        'new["reason"], new["message"] = "InputNotFound", "gone"',
        'def _not_found_reason() -> str:\n    return "InputNotFound"',
        'def stuck(pod) -> tuple[str, str]:\n    return "InputNotFound", "gone"',
        'events.append(("Warning", "InputNotFound", "gone"))',
        'kube.create_event(vj, "Warning", "InputNotFound", "gone")',
    ],
    ids=[
        "a reason= argument",
        "a class attribute",
        "a tuple assignment",
        "a function named for a reason",
        "a (reason, message) function",
        "an Event tuple",
        "an Event call",
    ],
)
def test_the_scan_sees_a_literal_reason(code: str) -> None:
    """The literal check is not vacuous: each way the code once wrote a reason is seen."""
    assert [reason for _, reason in used_reasons(ast.parse(code))] == ["InputNotFound"]


def test_the_operator_and_the_transcoder_use_the_enum() -> None:
    found = {r for p in MODULES for r in reason_members(ast.parse(p.read_text()))}
    assert {
        "Queued",
        "JobDeleted",
        "InputNotFound",
        "OutputBucketNotFound",
        "OutputExists",
        "NvencUnavailable",
        "Unschedulable",
        "ArtifactsDeleted",
        "TransientError",
    } <= found


def test_reasons_and_conditions_are_described_and_well_formed() -> None:
    import re

    assert set(REASON_DESCRIPTIONS) == set(Reason)
    assert set(CONDITION_DESCRIPTIONS) == set(ConditionType)
    assert len({r.value for r in Reason}) == len(Reason)
    for reason in Reason:
        assert re.match(REASON_PATTERN, reason.value) and len(reason.value) <= 128, reason


def test_docs_list_every_condition_and_reason() -> None:
    docs = generate.docs_markdown()
    for kind in ConditionType:
        assert f"| `{kind.value}` |" in docs
    for reason in Reason:
        assert f"| `{reason.value}` | {REASON_DESCRIPTIONS[reason]}" in docs


def test_the_models_know_the_colours_the_transcoder_knows() -> None:
    from pydantic import TypeAdapter

    colour = TypeAdapter(Color)
    for name in CSS_COLORS:
        assert colour.validate_python(name) == name
        assert colour.validate_python(name.upper()) == name.upper()  # FFmpeg's names are case-insensitive
    for wrong in ("whtie", "blakc", "transparent-ish", "#fff", "red:drawbox"):
        with pytest.raises(ValueError, match="must be a CSS colour name"):
            colour.validate_python(wrong)


def test_a_spec_error_past_the_api_server_is_bad_input_not_internal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An older CRD let `color: whtie` through: the transcoder ends 65 (not retried) with one clear line."""
    spec = {
        "inputs": [{"name": "main", "uri": "s3://media/in/main.mp4"}],
        "operations": [{"text": {"text": "hi", "color": "whtie"}}],
        "output": {"uri": "s3://media/out/"},
    }
    result = tmp_path / "result.json"
    code = cli.main(["--result", str(result), "--workdir", str(tmp_path / "work")], {"VIDEOJOB_SPEC": json.dumps(spec)})
    assert code == ExitCode.BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "InvalidSpec" in err[0] and "operations.0.text.color" in err[0], err
    assert json.loads(result.read_text())["reason"] == "InvalidSpec"


def test_an_unknown_colour_reaching_the_planner_is_bad_input() -> None:
    """Past the models too (a model built without validation): the planner's colour lookup is bad input."""
    from videojob.errors import BadInput
    from videojob.transcoder.escape import ffmpeg_color

    text = Text.model_construct(text="hi", color="whtie")
    with pytest.raises(BadInput) as caught:
        ffmpeg_color(text.color)
    assert caught.value.exit_code == ExitCode.BAD_INPUT and caught.value.reason == "InvalidSpec"
