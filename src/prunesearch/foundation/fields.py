"""Declared settings: dataclass fields that carry their help text and what values they allow.

One declaration feeds study-file validation and its error messages; a test checks that the
README documents every declared key.
"""

import dataclasses
import math
import types
import typing
from collections.abc import Callable

from prunesearch.errors import MISSING


def setting(*, help: str, allowed: str, check: Callable[[typing.Any], bool] = lambda v: True,
            default=MISSING, added: bool = False):
    """A dataclass field with `help` (what it means, with units), `allowed` (what values are
    valid, in words) and `check` (the same as a predicate). `added`: a setting that came after
    studies were stored; at its default it is left out of identities (a study's fingerprint,
    the dense cache key), so that those stay what they were."""
    metadata = {"help": help, "allowed": allowed, "check": check, "added": added}
    if default is MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def is_required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def field_types(cls) -> dict[str, typing.Any]:
    return typing.get_type_hints(cls)


def coerce(value, type_):
    """`value` as `type_` if a TOML value of that type may stand for it, else MISSING.

    An int is accepted where a float is expected (TOML `lr = 1`); a bool is never an int;
    TOML's inf and nan are never a number (no setting means "unlimited" by infinity).
    """
    if isinstance(type_, types.UnionType) or typing.get_origin(type_) is typing.Union:
        for option in typing.get_args(type_):
            result = coerce(value, option)
            if result is not MISSING:
                return result
        return MISSING
    if type_ is type(None):
        return MISSING  # "absent" is spelt by leaving the key out; TOML has no null
    if type_ is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value) else MISSING
    if type_ is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else MISSING
    return value if isinstance(value, type_) else MISSING


def valid(field: dataclasses.Field, value) -> bool:
    return field.metadata["check"](value)


def format_value(value) -> str:
    """A setting's value as a study file spells it: booleans in lower case, unset as "unset"."""
    if value is None:
        return "unset"
    return str(value).lower() if isinstance(value, bool) else str(value)
