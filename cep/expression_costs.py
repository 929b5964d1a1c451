"""Bounds on what one expression may cost, so a formula can neither hang a worker nor fill memory.

The whitelist of `cep.expressions` guards the interpreter; this module guards the clock and the
memory. Only operations whose cost grows with a *value* need it: integer powers, factorial, comb,
perm and prod (the size of the integer they build), `*` on a sequence (repetition), `%` on a
string (printf widths), `round` to huge negative digits (which builds a power of ten), `int` of a
long string, `sum` with a list start (quadratic). Each has a guarded twin here that checks its
operands' sizes before computing and raises `CostLimitError`, a ValueError, so the runtime
dead-letters the record with the reason as for any other evaluation error.

The guards stay off the common path: `*` is guarded only where one operand may be a sequence or a
big integer (never where one is surely a float, as in `mid * 0.999`), `%` only where its left
operand may be a string; `+ - / //`, comparisons and field reads are never guarded. Where every
operand of a guarded operation is a constant, `first_costly_constant` evaluates it once at compile
time, so `cep validate` refuses `'a' * 10**9` with the expression's place.
"""
from __future__ import annotations

import ast
import functools
import math
import re
from typing import Any, Callable

MAX_INT_BITS = 65_536
"""Largest integer an expression may build (about 19,700 decimal digits)."""

MAX_INT_EXPONENT = 1_024
"""Largest integer exponent `**` accepts, so `10 ** 10 ** 10` is an error, not a hang."""

MAX_SEQUENCE_LENGTH = 1_000_000
"""Longest string or list an expression may build by repetition or formatting."""

MAX_ROUND_DIGITS = 10_000
"""Largest `ndigits` (either sign) `round` accepts: rounding an integer to -n digits builds 10**n."""

MAX_INT_STRING = 20_000
"""Longest string `int()` converts (Python's own limit spares bases that are powers of two)."""

LIMITS_HINT = (f"expressions are bounded in cost: integers up to {MAX_INT_BITS:,} bits, "
               f"exponents up to {MAX_INT_EXPONENT:,}, strings and lists up to "
               f"{MAX_SEQUENCE_LENGTH:,} items")

_SEQUENCES = (str, bytes, list, tuple)
_LN2 = math.log(2)


class CostLimitError(ValueError):
    """An expression would build an integer, string or list beyond the limits above."""


# -- the guarded operations ---------------------------------------------------------------------
def guarded_pow(base: Any, exponent: Any) -> Any:
    if type(base) is float:  # the common case: overflow is an immediate OverflowError
        return base ** exponent
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        if exponent > MAX_INT_EXPONENT:
            raise CostLimitError(f"integer exponent {exponent} is above the limit of "
                                 f"{MAX_INT_EXPONENT:,}")
        _check_bits(base.bit_length() * exponent, f"{_short(base)} ** {exponent}")
    elif isinstance(base, int) and isinstance(exponent, int) and exponent < -MAX_INT_EXPONENT:
        raise CostLimitError(f"integer exponent {exponent} is below the limit of "
                             f"{-MAX_INT_EXPONENT:,}")
    return base ** exponent


def guarded_mul(left: Any, right: Any) -> Any:
    if type(left) is float or type(right) is float:
        return left * right
    if isinstance(left, int) and isinstance(right, int):
        _check_bits(left.bit_length() + right.bit_length(), "the product")
    elif isinstance(left, _SEQUENCES) and isinstance(right, int):
        _check_length(len(left) * right, f"repeating a {type(left).__name__}")
    elif isinstance(right, _SEQUENCES) and isinstance(left, int):
        _check_length(len(right) * left, f"repeating a {type(right).__name__}")
    return left * right


_FORMAT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def guarded_mod(left: Any, right: Any) -> Any:
    """`%`: a number's remainder as is; a string's printf formatting only with bounded widths."""
    if isinstance(left, str):
        total = len(left)
        for width, precision in _FORMAT_SPEC.findall(left):
            if "*" in (width, precision):
                raise CostLimitError("a '*' width in % formatting is above the limit: "
                                     "write the width in the format")
            total += int(width or 0) + int(precision or 0)
        _check_length(total, "formatting with %")
    return left % right


def guarded_round(number: Any, ndigits: Any = None) -> Any:
    if isinstance(ndigits, int) and abs(ndigits) > MAX_ROUND_DIGITS:
        raise CostLimitError(f"round to {ndigits} digits is beyond the limit of "
                             f"{MAX_ROUND_DIGITS:,}")
    return round(number, ndigits)


def guarded_int(value: Any = 0, *args: Any, **kwargs: Any) -> int:
    if isinstance(value, (str, bytes)) and len(value) > MAX_INT_STRING:
        raise CostLimitError(f"int() of a {len(value):,}-character string is above the limit of "
                             f"{MAX_INT_STRING:,}")
    return int(value, *args, **kwargs)


def guarded_sum(values: Any, start: Any = 0) -> Any:
    """sum of numbers; a list or tuple `start` would join sequences in quadratic time."""
    if isinstance(start, _SEQUENCES):
        raise CostLimitError("sum() with a list or tuple start joins sequences in quadratic "
                             "time, which is above the limit: sum adds numbers")
    return sum(values, start)


def guarded_factorial(n: Any) -> int:
    if isinstance(n, int) and n > 1:
        _check_bits(_log2_factorial(n), f"math.factorial({_short(n)})")
    return math.factorial(n)


def guarded_comb(n: Any, k: Any) -> int:
    if isinstance(n, int) and isinstance(k, int) and 0 < k < n:
        _check_bits(_log2_factorial(n) - _log2_factorial(k) - _log2_factorial(n - k),
                    f"math.comb({_short(n)}, {_short(k)})")
    return math.comb(n, k)


def guarded_perm(n: Any, k: Any = None) -> int:
    taken = n if k is None else k
    if isinstance(n, int) and isinstance(taken, int) and 0 < taken <= n:
        _check_bits(_log2_factorial(n) - _log2_factorial(n - taken),
                    f"math.perm({_short(n)}, {_short(taken)})")
    return math.perm(n, k)


def guarded_prod(values: Any, *, start: Any = 1) -> Any:
    """math.prod as a chain of guarded products (`math.prod([3, 'a'])` repeats a string)."""
    result = start
    for value in values:
        result = guarded_mul(result, value)
    return result


GUARDED_OPERATORS: dict[type[ast.operator], tuple[str, Callable[..., Any]]] = {
    ast.Pow: ("_cep_pow", guarded_pow), ast.Mult: ("_cep_mul", guarded_mul),
    ast.Mod: ("_cep_mod", guarded_mod)}
"""Binary operators with a guarded twin: the name the compiled code calls it by, the function."""

GUARDED_FUNCTIONS: dict[str, Callable[..., Any]] = {"round": guarded_round, "int": guarded_int,
                                                    "sum": guarded_sum}
"""Whitelisted functions (by their expression name) replaced by their guarded twins."""

GUARDED_MATH: dict[str, Callable[..., Any]] = {
    "factorial": guarded_factorial, "comb": guarded_comb, "perm": guarded_perm,
    "prod": guarded_prod}
"""`math.<name>` replaced by a guarded twin."""


def _log2_factorial(n: int) -> float:
    """log2(n!), the bit length of n! (n >= 0); huge n is bounded at once without lgamma."""
    if n.bit_length() > 1_000:
        return math.inf
    return math.lgamma(n + 1) / _LN2


def _check_bits(bits: float, what: str) -> None:
    if bits > MAX_INT_BITS:
        raise CostLimitError(f"{what} would have about {_count(bits)} bits, above the limit of "
                             f"{MAX_INT_BITS:,}")


def _check_length(length: int, what: str) -> None:
    if length > MAX_SEQUENCE_LENGTH:
        raise CostLimitError(f"{what} would make {_count(length)} items, above the limit of "
                             f"{MAX_SEQUENCE_LENGTH:,}")


def _count(number: float) -> str:
    return "infinitely many" if number == math.inf else f"{int(number):,}"


def _short(value: int) -> str:
    return str(value) if value.bit_length() < 64 else f"<a {value.bit_length():,}-bit integer>"


# -- where the guards go ------------------------------------------------------------------------
FLOAT, NUMBER, ANY = "float", "number", "any"
"""What an expression's value is surely known to be: a float; a number (int, float, bool); or
anything, a field's value included (which may be a string or a list)."""

_FLOAT_MATH = frozenset({
    "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "cbrt", "copysign", "cos",
    "cosh", "degrees", "dist", "erf", "erfc", "exp", "exp2", "expm1", "fabs", "fmod", "fsum",
    "gamma", "hypot", "ldexp", "lgamma", "log", "log10", "log1p", "log2", "nextafter", "pow",
    "radians", "remainder", "sin", "sinh", "sqrt", "tan", "tanh", "ulp"})
_NUMBER_MATH = frozenset({"ceil", "comb", "factorial", "floor", "gcd", "isqrt", "lcm", "perm",
                          "trunc"})
_NUMBER_FUNCTIONS = frozenset({"abs", "bool", "int", "len", "round"})


def kind_of(node: ast.expr, math_prefix: str) -> str:
    """FLOAT, NUMBER or ANY for a node of the rewritten tree (`math.f` is `<prefix>f` there)."""
    if isinstance(node, ast.Constant):
        value = node.value
        return FLOAT if isinstance(value, float) else NUMBER if isinstance(value, int) else ANY
    if isinstance(node, ast.Compare) or (isinstance(node, ast.UnaryOp)
                                         and isinstance(node.op, ast.Not)):
        return NUMBER
    if isinstance(node, ast.UnaryOp):  # -x, +x: a sequence cannot get through
        return FLOAT if kind_of(node.operand, math_prefix) == FLOAT else NUMBER
    if isinstance(node, ast.BinOp):
        return _kind_of_binop(node, math_prefix)
    if isinstance(node, ast.IfExp):
        return _join(kind_of(node.body, math_prefix), kind_of(node.orelse, math_prefix))
    if isinstance(node, ast.BoolOp):
        return functools.reduce(_join, (kind_of(value, math_prefix) for value in node.values))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return _kind_of_call(node.func.id, math_prefix)
    return ANY


def _kind_of_binop(node: ast.BinOp, math_prefix: str) -> str:
    left, right = kind_of(node.left, math_prefix), kind_of(node.right, math_prefix)
    op = node.op
    if isinstance(op, ast.Div):
        return FLOAT
    if isinstance(op, (ast.Sub, ast.FloorDiv, ast.Add, ast.Mult)):
        if FLOAT in (left, right):
            return FLOAT  # a float with a sequence is a TypeError, so the result is a float
        if left == right == NUMBER or isinstance(op, (ast.Sub, ast.FloorDiv)):
            return NUMBER
        return ANY
    if isinstance(op, ast.Mod):
        return left  # a number's remainder is a number; a string's formatting is a string
    return ANY


def _kind_of_call(name: str, math_prefix: str) -> str:
    if name in ("float", "avg"):
        return FLOAT
    if name in _NUMBER_FUNCTIONS or name == GUARDED_OPERATORS[ast.Pow][0]:
        return NUMBER
    if name.startswith(math_prefix):
        function = name[len(math_prefix):]
        return FLOAT if function in _FLOAT_MATH else NUMBER if function in _NUMBER_MATH else ANY
    return ANY


def _join(first: str, second: str) -> str:
    if first == second:
        return first
    return NUMBER if ANY not in (first, second) else ANY


def needs_guard(node: ast.BinOp, math_prefix: str) -> bool:
    """Whether `*` or `%` at `node` may repeat a sequence, format a string or build a big int."""
    left = kind_of(node.left, math_prefix)
    if isinstance(node.op, ast.Mult):
        return FLOAT not in (left, kind_of(node.right, math_prefix))
    if isinstance(node.op, ast.Mod):
        return left == ANY
    return False


def first_costly_constant(body: ast.expr, namespace: dict[str, Any]) -> CostLimitError | None:
    """The refusal of the first largest constant part of `body` (no field, no bound name) that
    calls a guard, evaluated once with the guards: `'a' * 10**9` fails at compile time.
    Other errors of a constant part (`1 / 0`) are left to run time, where they happen."""
    pending = [body]
    while pending:
        node = pending.pop()
        names = [n for n in ast.walk(node) if isinstance(n, ast.Name)]
        if not names or not all(n.id in namespace for n in names):
            pending.extend(child for child in ast.iter_child_nodes(node)
                           if isinstance(child, ast.expr))
            continue
        if not any(namespace[n.id] in _GUARDS for n in names):
            continue
        code = compile(ast.fix_missing_locations(ast.Expression(node)), "<constant>", "eval")
        try:
            eval(code, namespace)  # noqa: S307 - a checked constant whose costs are guarded
        except CostLimitError as exc:
            return exc
        except Exception:  # noqa: BLE001 - not a cost: the run time reports it per record
            continue
    return None


_GUARDS = frozenset({*(function for _, function in GUARDED_OPERATORS.values()),
                     *GUARDED_FUNCTIONS.values(), *GUARDED_MATH.values()})
