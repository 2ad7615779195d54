"""A small, safe expression language for derived variables, criteria and subgroups.

Expressions are parsed with :func:`ast.parse` and compiled into a tree of numpy operations
from a whitelist; nothing is ever passed to ``eval``/``exec`` and there is no attribute access,
subscripting, keyword argument, lambda, comprehension or import. Allowed:

- numbers (``int``, ``float``, ``True``/``False``) and the names of spec variables;
- arithmetic ``+ - * / ** %`` and unary ``-``/``+``;
- comparisons ``< <= > >= == !=`` (chains allowed), combined with ``and``, ``or``, ``not``
  (element-wise);
- a categorical compared with a category label, e.g. ``sex == 'female'``;
- functions ``sqrt log log10 exp abs where clip minimum maximum``.

Examples
--------
>>> import numpy as np
>>> e = compile_expression("sqrt(h * w / 3600)", {"h", "w"}, where="derived.bsa")
>>> float(e({"h": np.array([170.0]), "w": np.array([70.0])})[0])  # doctest: +ELLIPSIS
1.8181...
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping

import numpy as np

from .errors import CohortError

__all__ = ["ALLOWED_FUNCTIONS", "Expression", "ExpressionError", "compile_expression"]

ALLOWED_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "sqrt": np.sqrt,
    "log": np.log,
    "log10": np.log10,
    "exp": np.exp,
    "abs": np.abs,
    "where": np.where,
    "clip": np.clip,
    "minimum": np.minimum,
    "maximum": np.maximum,
}
_ARITY = {
    "sqrt": 1,
    "log": 1,
    "log10": 1,
    "exp": 1,
    "abs": 1,
    "where": 3,
    "clip": 3,
    "minimum": 2,
    "maximum": 2,
}
_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}
_CMPOPS = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ALLOWED_TEXT = (
    "numbers, variable names, + - * / ** %, comparisons, and/or/not, "
    "functions " + ", ".join(sorted(ALLOWED_FUNCTIONS))
)


class ExpressionError(CohortError):
    """An expression is malformed, uses a forbidden construct or names an unknown variable.

    Attributes
    ----------
    kind : {"syntax", "forbidden", "unknown_variable", "unknown_level"}
        What went wrong.
    """

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


Expression = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def compile_expression(
    text: str,
    names: set[str] | Mapping[str, object],
    *,
    where: str,
    categories: Mapping[str, list[str]] | None = None,
) -> Expression:
    """Compile ``text`` into a function of a mapping ``name -> ndarray``.

    Parameters
    ----------
    text : str
        The expression.
    names : set of str
        Variables the expression may use.
    where : str
        Location for error messages (spec key, e.g. ``"derived.bsa_m2.expr"``).
    categories : mapping of str to list of str, optional
        Category labels of categorical variables; ``sex == 'female'`` compiles to a comparison
        with the label's integer code.

    Returns
    -------
    callable
        ``f(values) -> ndarray`` evaluating the expression element-wise.

    Raises
    ------
    ExpressionError
        Syntax error, forbidden construct, unknown variable or unknown category label.
    """
    categories = dict(categories or {})
    known = set(names)
    try:
        tree = ast.parse(str(text), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(
            f"key {where!r}: expression {text!r} is not valid syntax ({exc.msg}); allowed: "
            f"{_ALLOWED_TEXT}",
            "syntax",
        ) from None

    def forbidden(node: ast.AST, what: str | None = None) -> ExpressionError:
        label = what or type(node).__name__
        snippet = ast.get_source_segment(str(text), node) or text
        return ExpressionError(
            f"key {where!r}: forbidden construct {label} ({snippet!r}) in expression {text!r}; "
            f"allowed: {_ALLOWED_TEXT}",
            "forbidden",
        )

    def label_code(var: str, node: ast.AST) -> int:
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            raise forbidden(node, "comparison of a categorical with a non-label")
        labels = categories[var]
        if node.value not in labels:
            raise ExpressionError(
                f"key {where!r}: {var!r} has no category {node.value!r} in expression {text!r}; "
                f"allowed: {labels}",
                "unknown_level",
            )
        return labels.index(node.value)

    def build(node: ast.AST) -> Expression:
        if isinstance(node, ast.Expression):
            return build(node.body)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool | int | float) and not isinstance(node.value, complex):
                value = node.value
                return lambda env: value
            raise forbidden(node, f"constant of type {type(node.value).__name__}")
        if isinstance(node, ast.Name):
            name = node.id
            if name not in known:
                raise ExpressionError(
                    f"key {where!r}: unknown variable {name!r} in expression {text!r}; "
                    f"known variables here: {sorted(known)}",
                    "unknown_variable",
                )
            return lambda env: env[name]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            op = _BINOPS[type(node.op)]
            left, right = build(node.left), build(node.right)
            return lambda env: op(left(env), right(env))
        if isinstance(node, ast.UnaryOp):
            operand = build(node.operand)
            if isinstance(node.op, ast.USub):
                return lambda env: -operand(env)
            if isinstance(node.op, ast.UAdd):
                return operand
            if isinstance(node.op, ast.Not):
                return lambda env: np.logical_not(operand(env))
            raise forbidden(node, f"unary operator {type(node.op).__name__}")
        if isinstance(node, ast.BoolOp):
            parts = [build(v) for v in node.values]
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or

            def boolop(env):
                result = parts[0](env)
                for part in parts[1:]:
                    result = combine(result, part(env))
                return result

            return boolop
        if isinstance(node, ast.Compare):
            return build_compare(node)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in ALLOWED_FUNCTIONS:
                what = (
                    f"call of {node.func.id!r}"
                    if isinstance(node.func, ast.Name)
                    else "call of a non-name"
                )
                raise forbidden(node, what)
            if node.keywords:
                raise forbidden(node, "keyword argument")
            fname = node.func.id
            if len(node.args) != _ARITY[fname]:
                raise ExpressionError(
                    f"key {where!r}: {fname}() takes {_ARITY[fname]} argument(s), got "
                    f"{len(node.args)} in expression {text!r}",
                    "syntax",
                )
            func = ALLOWED_FUNCTIONS[fname]
            args = [build(a) for a in node.args]
            return lambda env: func(*(a(env) for a in args))
        raise forbidden(node)

    def build_compare(node: ast.Compare) -> Expression:
        operands = [node.left, *node.comparators]
        steps = []
        for op, lhs, rhs in zip(node.ops, operands[:-1], operands[1:], strict=True):
            if type(op) not in _CMPOPS:
                raise forbidden(node, f"comparison {type(op).__name__}")
            func = _CMPOPS[type(op)]
            if isinstance(lhs, ast.Name) and lhs.id in categories and lhs.id in known:
                if isinstance(rhs, ast.Constant) and isinstance(rhs.value, str):
                    code = label_code(lhs.id, rhs)
                    steps.append(_bind(func, build(lhs), lambda env, c=code: c))
                    continue
            if isinstance(rhs, ast.Name) and rhs.id in categories and rhs.id in known:
                if isinstance(lhs, ast.Constant) and isinstance(lhs.value, str):
                    code = label_code(rhs.id, lhs)
                    steps.append(_bind(func, lambda env, c=code: c, build(rhs)))
                    continue
            steps.append(_bind(func, build(lhs), build(rhs)))

        def compare(env):
            result = steps[0](env)
            for step in steps[1:]:
                result = np.logical_and(result, step(env))
            return result

        return compare

    return build(tree)


def _bind(func, left: Expression, right: Expression) -> Expression:
    return lambda env: func(left(env), right(env))
