"""Reward schemes: turn a grading verdict into a scalar reward.

Built-in schemes (``r`` is the reward):

=============  ===========  ==========  ============  ==========================================
scheme         correct      wrong       no answer     notes
=============  ===========  ==========  ============  ==========================================
simplerl       +1           -0.5        -1            default; SimpleRL-Zero's rule reward
correctness    1            0           0             GSM8K style: last-number fallback allowed
rlinf          +5           -5          -5            RLinf's math reward
=============  ===========  ==========  ============  ==========================================

A timed-out or crashed item is graded ``wrong`` (reason ``timeout`` / ``crash: ...``), so it gets the wrong
reward of its scheme.

Format bonus: append ``+format`` to any scheme name (``"correctness+format"``) to add ``format_bonus``
(default 0.1) whenever a final answer was given in a structured form: ``<answer>…</answer>`` or
``\\boxed{…}`` (``Grade.method`` is ``"answer_tag"`` or ``"boxed"``), whether or not it is right. An
unclosed ``\\boxed{`` or an empty ``<answer></answer>`` (verdict ``no_answer``) gets no bonus.

Plugins. A scheme is a function ::

    def my_scheme(grade: Grade, completion: str, gold) -> float

(``grade.verdict`` is ``"correct" | "wrong" | "no_answer"``; ``grade.answer``, ``grade.reason`` and
``grade.method`` are available too). It must be fast, pure and deterministic: it runs in the service process
for every item. Set ``my_scheme.last_number_fallback = True`` to grade with the GSM8K-style last-number
fallback, and give it a docstring (shown by ``GET /v1/schemes``). A plugin can also be a ``RewardScheme``
object. Load plugins with ``--plugin [name=]package.module:function`` or expose them in the entry-point group
``mathrl.reward_schemes`` (entry-point name = scheme name)::

    [project.entry-points."mathrl.reward_schemes"]
    length_aware = "my_pkg.rewards:length_aware"
"""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Optional

from reward_service.grading import CORRECT, NO_ANSWER, WRONG, Grade

log = logging.getLogger("reward_service.rewards")

ENTRY_POINT_GROUP = "mathrl.reward_schemes"
FORMAT_SUFFIX = "+format"
FORMAT_METHODS = frozenset({"answer_tag", "boxed"})
DEFAULT_SCHEME = "simplerl"

SchemeFn = Callable[[Grade, str, Any], float]


class UnknownSchemeError(ValueError):
    """A request named a scheme the service does not have (HTTP 400)."""

    def __init__(self, name: str, known: list[str]):
        self.name, self.known = name, known
        super().__init__(
            f"unknown reward scheme {name!r}; known schemes: {', '.join(known)} "
            f"(any of them with the suffix '{FORMAT_SUFFIX}' adds the format bonus)"
        )


@dataclass(frozen=True)
class RewardScheme:
    """A named reward function over grading results."""

    name: str
    fn: SchemeFn
    last_number_fallback: bool = False  # grade with the GSM8K-style last-number fallback
    description: str = ""

    def __call__(self, grade: Grade, completion: str = "", gold: Any = None) -> float:
        return float(self.fn(grade, completion, gold))


def table_scheme(name: str, correct: float, wrong: float, no_answer: float, *, fallback: bool = False,
                 description: str = "") -> RewardScheme:
    """A scheme that maps the three verdicts to three constants."""
    table = {CORRECT: float(correct), WRONG: float(wrong), NO_ANSWER: float(no_answer)}

    def fn(grade: Grade, completion: str = "", gold: Any = None) -> float:
        return table[grade.verdict]

    desc = description or f"correct {correct:+g}, wrong {wrong:+g}, no answer {no_answer:+g}"
    return RewardScheme(name, fn, fallback, desc)


BUILTIN_SCHEMES = (
    table_scheme("simplerl", 1.0, -0.5, -1.0,
                 description="SimpleRL-Zero: +1 correct, -0.5 wrong, -1 no answer (the default)"),
    table_scheme("correctness", 1.0, 0.0, 0.0, fallback=True,
                 description="1 if correct else 0; GSM8K style, the last number counts when no answer is marked"),
    table_scheme("rlinf", 5.0, -5.0, -5.0, description="RLinf: +5 correct, -5 otherwise"),
)


def with_format_bonus(base: RewardScheme, bonus: float) -> RewardScheme:
    """``base`` plus ``bonus`` when the answer was given in ``<answer>`` tags or ``\\boxed{}``."""

    def fn(grade: Grade, completion: str = "", gold: Any = None) -> float:
        r = base(grade, completion, gold)
        return r + bonus if grade.method in FORMAT_METHODS and grade.verdict != NO_ANSWER else r

    return RewardScheme(
        base.name + FORMAT_SUFFIX, fn, base.last_number_fallback,
        f"{base.description}; plus {bonus:g} when the answer is in <answer> tags or \\boxed{{}}",
    )


def as_scheme(obj: Any, name: Optional[str] = None) -> RewardScheme:
    """Wrap a plugin object (a RewardScheme or a function ``(grade, completion, gold) -> float``)."""
    if isinstance(obj, RewardScheme):
        return obj if name is None or name == obj.name else RewardScheme(name, obj.fn, obj.last_number_fallback,
                                                                          obj.description)
    if not callable(obj):
        raise TypeError(f"a reward scheme must be callable or a RewardScheme, got {type(obj).__name__}")
    try:
        params = inspect.signature(obj).parameters
        positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) < 3 and not any(p.kind == p.VAR_POSITIONAL for p in params.values()):
            raise TypeError(f"reward scheme {getattr(obj, '__name__', obj)!r} must accept (grade, completion, gold)")
    except ValueError:  # builtins without a signature: trust them
        pass
    scheme_name = name or getattr(obj, "scheme_name", None) or getattr(obj, "__name__", None)
    if not scheme_name:
        raise ValueError("give the plugin a name: name=package.module:function")
    doc = (inspect.getdoc(obj) or "").strip().splitlines()
    return RewardScheme(scheme_name, obj, bool(getattr(obj, "last_number_fallback", False)), doc[0] if doc else "")


class SchemeRegistry:
    """The schemes a service knows: built-ins, plugins, and ``+format`` variants of all of them."""

    def __init__(self, format_bonus: float = 0.1, default: str = DEFAULT_SCHEME):
        self.format_bonus = float(format_bonus)
        self._schemes: dict[str, RewardScheme] = {}
        self._format_variants: dict[str, RewardScheme] = {}
        for s in BUILTIN_SCHEMES:
            self.register(s)
        self.default = default
        self.get(default)  # validate

    def register(self, scheme: RewardScheme, *, replace: bool = False) -> None:
        if not scheme.name or FORMAT_SUFFIX in scheme.name or ":" in scheme.name:
            raise ValueError(f"invalid scheme name {scheme.name!r}")
        if scheme.name in self._schemes and not replace:
            raise ValueError(f"reward scheme {scheme.name!r} is already registered")
        self._schemes[scheme.name] = scheme
        self._format_variants.pop(scheme.name, None)

    def load_plugin(self, spec: str) -> RewardScheme:
        """Register ``[name=]package.module:function`` and return the scheme."""
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "", spec
        try:
            scheme = as_scheme(_load_object(path.strip()), name.strip() or None)
        except Exception as e:
            raise ValueError(f"cannot load reward scheme plugin {spec!r}: {e}") from e
        self.register(scheme, replace=True)
        return scheme

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register every scheme in the entry-point group; a broken plugin is logged and skipped."""
        loaded = []
        for ep in metadata.entry_points(group=group):
            try:
                self.register(as_scheme(ep.load(), ep.name), replace=True)
                loaded.append(ep.name)
            except Exception as e:
                log.error("skipping reward scheme entry point %s = %s: %s", ep.name, ep.value, e)
        return loaded

    def get(self, name: Optional[str]) -> RewardScheme:
        """The scheme for ``name`` (None = the default); raises UnknownSchemeError."""
        name = name or self.default
        s = self._schemes.get(name)
        if s is not None:
            return s
        if name.endswith(FORMAT_SUFFIX):
            base_name = name[: -len(FORMAT_SUFFIX)]
            v = self._format_variants.get(base_name)
            if v is None and base_name in self._schemes:
                v = self._format_variants[base_name] = with_format_bonus(self._schemes[base_name], self.format_bonus)
            if v is not None:
                return v
        raise UnknownSchemeError(name, self.names())

    def names(self) -> list[str]:
        return sorted(self._schemes)

    def describe(self) -> list[dict]:
        return [
            {"name": s.name, "description": s.description, "last_number_fallback": s.last_number_fallback}
            for s in sorted(self._schemes.values(), key=lambda s: s.name)
        ]


def _load_object(path: str) -> Any:
    import importlib

    if ":" not in path:
        raise ValueError(f"expected 'package.module:function', got {path!r}")
    mod_name, _, attr = path.partition(":")
    obj: Any = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def openrlhf_score(grade: Grade) -> float:
    """OpenRLHF's ``scores`` (used for dynamic filtering): 1.0 when correct, else 0.0."""
    return 1.0 if grade.verdict == CORRECT else 0.0
