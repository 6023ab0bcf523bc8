"""Program text, the form the model writes and users edit (`circle(x=30, y=5, radius=5)`): formatting
in reading order, and parsing with `ast.parse` and a strict walk over the syntax tree (nothing is
ever executed; anything outside the grammar is refused with its line and column)."""

from __future__ import annotations

import ast
from typing import Any, Iterable

from cad2program.contract.program import (PRIMITIVE_TYPES, TYPE_NAMES, Arc, Circle, Polyline, Primitive, ProgramError,
                                          Rectangle, field_names, loads_json, primitives_from_json, quantize)


def reading_order(primitive: Primitive) -> tuple[float, float]:
    """The order programs are written in: top to bottom, then left to right, by the primitive's highest
    point (what a reader scans first). Training targets follow it, so the model writes in it too."""
    if isinstance(primitive, (Circle, Arc)):
        points = [(primitive.x, primitive.y + primitive.radius)]
    elif isinstance(primitive, Rectangle):
        points = [(primitive.x, primitive.y + primitive.height)]
    else:
        points = primitive.key_points()
    return (-max(y for _, y in points), min(x for x, _ in points))


def format_program(primitives: Iterable[Primitive]) -> str:
    """The program text: one call a line, canonical formatting, a trailing newline when not empty."""
    lines = [p.to_program() for p in primitives]
    return "\n".join(lines) + ("\n" if lines else "")


def _where(node: ast.AST) -> str:
    return f"line {node.lineno}, column {node.col_offset + 1}"


def _number(node: ast.AST, field: str) -> float:
    """A number literal, possibly negated; anything else (names, calls, strings) is refused."""
    negate = False
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        negate = isinstance(node.op, ast.USub)
        node = node.operand
    if (not isinstance(node, ast.Constant) or isinstance(node.value, bool)
            or not isinstance(node.value, (int, float))):
        raise ProgramError(f"{_where(node)}: {field} must be a number, got `{ast.unparse(node)}`")
    value = -node.value if negate else node.value
    try:
        return quantize(value, field)
    except ProgramError as err:
        raise ProgramError(f"{_where(node)}: {err}") from None


def _points(node: ast.AST) -> list[tuple[float, float]]:
    if not isinstance(node, (ast.List, ast.Tuple)):
        raise ProgramError(f"{_where(node)}: points must be a list of (x, y) pairs, got `{ast.unparse(node)}`")
    points = []
    for i, item in enumerate(node.elts):
        if not isinstance(item, (ast.Tuple, ast.List)) or len(item.elts) != 2:
            raise ProgramError(f"{_where(item)}: points[{i}] must be an (x, y) pair, got `{ast.unparse(item)}`")
        points.append((_number(item.elts[0], f"points[{i}] x"), _number(item.elts[1], f"points[{i}] y")))
    return points


def _bool(node: ast.AST, field: str) -> bool:
    if not isinstance(node, ast.Constant) or not isinstance(node.value, bool):
        raise ProgramError(f"{_where(node)}: {field} must be True or False, got `{ast.unparse(node)}`")
    return node.value


def _call_to_primitive(call: ast.Call) -> Primitive:
    if not isinstance(call.func, ast.Name):
        raise ProgramError(f"{_where(call)}: expected a primitive name such as circle(...), "
                           f"got `{ast.unparse(call.func)}`")
    type_name = call.func.id
    cls = PRIMITIVE_TYPES.get(type_name)
    if cls is None:
        raise ProgramError(f"{_where(call)}: unknown primitive {type_name!r} "
                           f"(expected one of {', '.join(TYPE_NAMES)})")
    names = field_names(type_name)
    if len(call.args) > len(names):
        raise ProgramError(f"{_where(call)}: {type_name} takes at most {len(names)} arguments, "
                           f"got {len(call.args)}")
    given: dict[str, ast.AST] = {}
    for name, arg in zip(names, call.args):  # positional arguments in contract order
        if isinstance(arg, ast.Starred):
            raise ProgramError(f"{_where(arg)}: `*` arguments are not part of a program")
        given[name] = arg
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ProgramError(f"{_where(keyword.value)}: `**` arguments are not part of a program")
        if keyword.arg not in names:
            raise ProgramError(f"{_where(keyword.value)}: {type_name} has no field {keyword.arg!r} "
                               f"(fields: {', '.join(names)})")
        if keyword.arg in given:
            raise ProgramError(f"{_where(keyword.value)}: {type_name} field {keyword.arg!r} given twice")
        given[keyword.arg] = keyword.value
    missing = [n for n in names if n not in given and not (cls is Polyline and n == "closed")]
    if missing:
        raise ProgramError(f"{_where(call)}: {type_name} is missing {', '.join(missing)}")
    values: dict[str, Any] = {}
    for name, node in given.items():
        if name == "points":
            values[name] = _points(node)
        elif name == "closed":
            values[name] = _bool(node, name)
        else:
            values[name] = _number(node, name)
    try:
        return cls(**values)
    except ProgramError as err:
        raise ProgramError(f"{_where(call)}: {err}") from None


def parse_program(text: str) -> list[Primitive]:
    """Program text -> primitives, refusing anything but primitive calls with literal arguments.

    Only parsing happens here (`ast.parse` builds a tree, it runs nothing). Validity against a sheet
    (positive sizes, angle ranges, points on the sheet) is checked by `program_problems`.
    """
    if not isinstance(text, str):
        raise ProgramError(f"a program is text, got {type(text).__name__}")
    try:
        module = ast.parse(text, mode="exec")
    except SyntaxError as err:
        if err.lineno is None:  # e.g. null bytes: Python gives no position
            raise ProgramError(f"syntax error: {err.msg}") from None
        raise ProgramError(f"line {err.lineno}, column {err.offset}: syntax error: {err.msg}") from None
    except (ValueError, RecursionError, MemoryError) as err:  # null bytes, absurd nesting
        raise ProgramError(f"not a program: {err}") from None
    primitives = []
    try:
        for statement in module.body:
            if not isinstance(statement, ast.Expr) or not isinstance(statement.value, ast.Call):
                raise ProgramError(f"{_where(statement)}: expected one primitive call a line, "
                                   f"got `{ast.unparse(statement)[:60]}`")
            primitives.append(_call_to_primitive(statement.value))
    except (RecursionError, SystemError):  # ast.unparse of a value nested thousands deep (-----1) recurses
        raise ProgramError("not a program: an expression is nested too deeply") from None
    return primitives


def parse_any(text: str) -> list[Primitive]:
    """Program text or a JSON list of primitives (what `render` and the runtime accept)."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        return primitives_from_json(loads_json(text))
    return parse_program(text)
