"""Command-line flags generated from a settings dataclass: one flag per field, its default and help
from the field itself, so a CLI flag and the dataclass can never disagree.

    add_flags(parser, BCConfig, required=("datasets",))  # --width, --blocks, ..., --datasets D [D ...]
    cfg = BCConfig(**values(args, BCConfig))

A field's help is its doc: the `#:` comment lines just above it, else the comment at the end of its
line. Types follow the annotations: int, float, str; bool as --name / --no-name; list[T] as nargs
(`+`, or `*` when the default is empty); tuple[T, ...] as nargs, fixed-length tuples with that many
values. Nested dataclasses are left to their own flags (skip them).
"""
from __future__ import annotations

import argparse
import ast
import functools
import inspect
import io
import textwrap
import tokenize
import typing
from dataclasses import MISSING, fields, is_dataclass


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """{field name: doc} from the class source (`#:` lines above a field, or its trailing comment).
    Cached per class: every parser build asks again, and reading the source is the slow part."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string
    lines = source.splitlines()
    docs = {}
    for node in ast.parse(source).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above, line = [], node.lineno - 1
        while line >= 1 and lines[line - 1].strip().startswith("#:"):
            above.insert(0, lines[line - 1].strip()[2:].strip())
            line -= 1
        trailing = comments.get(node.end_lineno, "")
        if trailing and not lines[node.end_lineno - 1].strip().startswith("#"):
            trailing = trailing.lstrip("#").strip()
        else:
            trailing = ""
        doc = " ".join(above) or trailing
        if doc:
            docs[node.target.id] = doc
    return docs


def _default(f):
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise TypeError(f"field {f.name} has no default; give it one or skip it")


def _selected(cls, skip, only):
    for f in fields(cls):
        if f.name in skip or (only is not None and f.name not in only):
            continue
        yield f


def add_flags(parser, cls, *, skip: tuple[str, ...] = (), only: tuple[str, ...] | None = None,
              names: dict[str, str] | None = None, defaults: dict | None = None,
              required: tuple[str, ...] = (), choices: dict | None = None) -> None:
    """Add one flag per selected field of dataclass `cls` (dest = the field name).

    names: field -> flag where it differs from --field-name; defaults: field -> a default this command
    chooses instead of the class's (say why where it is called); required: fields with no default here;
    choices: field -> the values argparse accepts.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    names, defaults, choices = names or {}, defaults or {}, choices or {}
    for f in _selected(cls, skip, only):
        hint = hints[f.name]
        if is_dataclass(hint):
            raise TypeError(f"{cls.__name__}.{f.name} is a nested dataclass: skip it and add its own flags")
        default = defaults.get(f.name, _default(f))
        flag = names.get(f.name, "--" + f.name.replace("_", "-"))
        help_text = docs.get(f.name, f"{cls.__name__}.{f.name}").replace("%", "%%")  # argparse formats help with %
        kwargs: dict = {"dest": f.name}
        if f.name in choices:
            kwargs["choices"] = list(choices[f.name])
        if f.name in required:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
            help_text += " (default: %(default)s)"
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin in (list, tuple):
            element = args[0] if args else str
            kwargs["type"] = element
            if origin is tuple and args and args[-1] is not Ellipsis:
                kwargs["nargs"] = len(args)
            else:
                kwargs["nargs"] = "+" if (default or f.name in required) else "*"
        else:
            kwargs["type"] = hint
        parser.add_argument(flag, help=help_text, **kwargs)


def values(args: argparse.Namespace, cls, *, skip: tuple[str, ...] = (), only: tuple[str, ...] | None = None) -> dict:
    """{field: value} of the selected fields from parsed flags (lists copied, tuples as tuples)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in _selected(cls, skip, only):
        if not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        origin = typing.get_origin(hints[f.name])
        if origin is tuple:
            value = tuple(value)
        elif origin is list:
            value = list(value)
        out[f.name] = value
    return out
