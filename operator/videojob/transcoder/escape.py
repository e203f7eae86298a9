"""Escaping for everything that enters an FFmpeg filter graph, and colours in the forms FFmpeg and ASS want.

An option value inside `-filter_complex` is parsed twice by libavfilter (see "Notes on filtergraph escaping" in
the FFmpeg filters documentation):

1. the graph parser cuts the description into filters with `av_get_token(..., "[],;")`, which removes one
   level of backslash escapes and single quotes;
2. each filter's argument string is then cut into `key=value` pairs with `av_get_token(..., ":")`, which
   removes a second level.

`filter_value()` protects a value against both: it wraps it in single quotes for level 2 (a quote inside is
written `'\\''`) and then backslash-escapes every character that is special at level 1. Whatever the value
holds, it comes back byte for byte as the option's value and cannot open a new option, filter or link label.

Values reach FFmpeg's own parsers after that (fontconfig for `font=`, libass for `force_style=`); those get
their own escaping here (`fontconfig_name()`), or are built only from validated tokens (colours, integers).
User text never goes through any of this: it is written to a file and read with `textfile=`.
"""

from __future__ import annotations

import math
import re

from videojob.api.colors import CSS_COLORS
from videojob.api.conditions import Reason
from videojob.errors import BadInput

_GRAPH_SPECIAL = re.compile(r"([\\'\[\],;])")


def quote_option(value: str) -> str:
    """Level 2 (option parser): the value as one single-quoted token."""
    return "'" + value.replace("'", "'\\''") + "'"


def escape_graph(text: str) -> str:
    """Level 1 (graph parser): backslash before every character the graph parser treats specially."""
    return _GRAPH_SPECIAL.sub(r"\\\1", text)


def filter_value(value: str) -> str:
    """A filter option value that reaches the filter unchanged, whatever it contains."""
    if "\x00" in value:
        raise ValueError("a filter option value cannot contain a NUL character")
    return escape_graph(quote_option(value))


def fontconfig_name(family: str) -> str:
    """A font family as a literal fontconfig pattern (drawtext's `font=` goes through FcNameParse)."""
    return re.sub(r"([\\\-:,=])", r"\\\1", family)


def number(value: float) -> str:
    """A number as FFmpeg reads it: plain decimal, no exponent, no trailing zeros."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    if float(value).is_integer():
        return str(int(value))
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# ---------------------------------------------------------------------------------------------------------------
# Colours

_HEX = re.compile(r"^#([0-9a-fA-F]{6})([0-9a-fA-F]{2})?$")


class UnknownColor(BadInput, ValueError):
    """A colour the API should have refused (an older CRD, a spec written by hand): bad input, never a bug."""

    reason = Reason.INVALID_SPEC


def parse_color(color: str) -> tuple[int, int, int, int]:
    """`name`, `#RRGGBB` or `#RRGGBBAA` → (r, g, b, alpha) with alpha 255 = opaque."""
    m = _HEX.match(color)
    if m:
        rgb = int(m.group(1), 16)
        alpha = int(m.group(2), 16) if m.group(2) else 255
    else:
        try:
            rgb = CSS_COLORS[color.lower()]
        except KeyError:
            raise UnknownColor(f"unknown colour {color!r}: use a CSS colour name or #RRGGBB[AA]") from None
        alpha = 255
    return (rgb >> 16) & 0xFF, (rgb >> 8) & 0xFF, rgb & 0xFF, alpha


def ffmpeg_color(color: str) -> str:
    """The colour as FFmpeg's `0xRRGGBBAA` (a token of hex digits only, safe in any option)."""
    r, g, b, a = parse_color(color)
    return f"0x{r:02X}{g:02X}{b:02X}{a:02X}"


def ass_color(color: str) -> str:
    """The colour as ASS's `&HAABBGGRR`, where AA is transparency (00 = opaque)."""
    r, g, b, a = parse_color(color)
    return f"&H{255 - a:02X}{b:02X}{g:02X}{r:02X}"
