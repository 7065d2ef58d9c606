"""The request and response bodies of the scoring endpoints: their schemas, and their parsing in steps.

The pydantic models document the API (OpenAPI) and validate each item. A body is parsed by
``reward_service.json_steps`` and validated item by item inside a generator (run by
``reward_service.offload``), so a 16384-item request never holds the event loop; the errors are the same
``{"loc", "msg", "type"}`` records pydantic gives, located in the request (``items.3.gold``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Generator, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, TypeAdapter, ValidationError
from pydantic import WithJsonSchema

from reward_service.json_steps import JSONBodyError, NotAnObject, TooManyElements, parse_object

MAX_ERRORS = 50  # validation errors listed in one 422 answer
_STEP = 512  # items validated between two yields

GOLD_SCHEMA = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "number"},
        {"type": "array", "minItems": 1, "items": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "number"}]}},
    ]
}
_GOLD_MSG = "gold must be a non-empty string, a number, or a non-empty list of strings/numbers"


def _is_scalar_gold(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, str):
        return bool(x.strip())
    return isinstance(x, (int, float)) and x == x and x not in (float("inf"), float("-inf"))


def _check_gold(v: Any) -> Any:
    if _is_scalar_gold(v) or (isinstance(v, list) and v and all(_is_scalar_gold(x) for x in v)):
        return v
    raise ValueError(f"{_GOLD_MSG}, got {json.dumps(v)[:80]}")


Gold = Annotated[Any, AfterValidator(_check_gold), WithJsonSchema(GOLD_SCHEMA)]


class ScoreItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    completion: StrictStr = Field(description="the model output (or a bare answer)")
    gold: Gold = Field(description="gold answer: a string (LaTeX, a GSM8K rationale ending in '#### N', a solution "
                                   "with \\boxed{}), a number, or a list of accepted answers")
    scheme: Optional[StrictStr] = Field(None, description="reward scheme for this item (overrides the request's)")


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scheme: Optional[StrictStr] = Field(None, description="reward scheme (default: the service's default_scheme)")
    items: list[ScoreItem]


class ScoreResult(BaseModel):
    reward: float
    verdict: str = Field(description="correct | wrong | no_answer")
    answer: Optional[str] = Field(description="the extracted final answer")
    reason: str = Field(description="why: e.g. 'equal as rationals', 'no boxed answer', 'timeout'")
    timed_out: bool = Field(False, description="over the time limit on two workers: a 'wrong' that says nothing "
                                               "about the answer (reason 'timeout')")
    retries: int = Field(0, description="times the item was run again on another worker because its worker hung "
                                        "past the time limit or died (0 or 1)")


class ScoreResponse(BaseModel):
    results: list[ScoreResult]


class RewardRequest(BaseModel):
    """OpenRLHF's remote reward request (extra fields it may send are ignored)."""

    model_config = ConfigDict(extra="ignore")
    query: list[StrictStr] = Field(description="prompt + response, as decoded by the trainer")
    prompts: Optional[list[StrictStr]] = Field(None, description="the prompts; each is removed from its query")
    labels: list[Gold] = Field(description="gold answers (OpenRLHF --label_key)")
    scheme: Optional[StrictStr] = None


class RewardResponse(BaseModel):
    rewards: list[float]
    scores: list[float] = Field(description="1.0 when correct else 0.0 (OpenRLHF dynamic filtering)")
    extra_logs: dict[str, list[float]] = Field(
        description="per-sample flags: accuracy, no_answer, timeout (over the time limit on two workers), retried "
                    "(run again after its worker hung or died), prompt_not_found (the prompt is not in the query), "
                    "split_at_assistant_marker (the text after the last assistant-turn marker was graded)")


# ------------------------------------------------------------------------------------------------ errors


class RequestInvalid(ValueError):
    """The request is malformed: 422 with ``errors`` = [{"loc", "msg", "type"}]."""

    def __init__(self, errors: list[dict]):
        self.errors = errors[:MAX_ERRORS]
        super().__init__(self.summary())

    def summary(self) -> str:
        return "; ".join(f"{e['loc']}: {e['msg']}" for e in self.errors[:5])


class TooManyItems(ValueError):
    """More items than ``max_items``: 413."""

    def __init__(self, key: str, limit: int):
        super().__init__(f"'{key}' has more than {limit} entries: over the limit of {limit} items per request "
                         "(max_items; raise it with --max-items or REWARD_SERVICE_MAX_ITEMS, or split the batch)")


def _error(loc: str, msg: str, typ: str) -> dict:
    return {"loc": loc, "msg": msg, "type": typ}


def _parse(body: bytes, max_items: int) -> Generator[None, None, dict]:
    try:
        return (yield from parse_object(body, max_items))
    except JSONBodyError as e:
        raise RequestInvalid([_error(f"body (character {e.pos})", f"malformed JSON: {e.msg}", "json_invalid")])
    except NotAnObject as e:
        raise RequestInvalid([_error("body", str(e), "model_attributes_type")])
    except TooManyElements as e:
        raise TooManyItems(e.key, e.limit) from None


def _validate_each(values: Any, adapter: TypeAdapter, key: str, errors: list) -> Generator[None, None, list]:
    """Validate every element of the list ``values`` (at ``key``), collecting errors; returns the valid values."""
    if not isinstance(values, list):
        errors.append(_error(key, "Input should be a valid list", "list_type"))
        return []
    out = []
    for i, v in enumerate(values):
        try:
            out.append(adapter.validate_python(v))
        except ValidationError as e:
            for err in e.errors(include_url=False):
                loc = ".".join(str(x) for x in (key, i, *err["loc"]))
                errors.append(_error(loc, err["msg"].removeprefix("Value error, "), err["type"]))
            if len(errors) >= MAX_ERRORS:
                break
        if i % _STEP == _STEP - 1:
            yield
    return out


def _check_keys(data: dict, required: tuple, allowed: Optional[set], errors: list) -> None:
    errors.extend(_error(k, "Field required", "missing") for k in required if k not in data)
    if allowed is not None:
        errors.extend(_error(k, "Extra inputs are not permitted", "extra_forbidden") for k in data if k not in allowed)


def _scheme(data: dict, errors: list) -> Optional[str]:
    s = data.get("scheme")
    if s is not None and not isinstance(s, str):
        errors.append(_error("scheme", "Input should be a valid string", "string_type"))
        return None
    return s


# ------------------------------------------------------------------------------------------------ requests

_ITEM = TypeAdapter(ScoreItem)
_STR = TypeAdapter(StrictStr)
_GOLD = TypeAdapter(Gold)


@dataclass
class ScoreJob:
    scheme: Optional[str]
    items: list  # ScoreItem


@dataclass
class RewardJob:
    scheme: Optional[str]
    queries: list
    prompts: Optional[list]
    labels: list


def parse_score_request(body: bytes, max_items: int) -> Generator[None, None, ScoreJob]:
    """``POST /v1/score``: ``{"scheme"?, "items": [{"completion", "gold", "scheme"?}]}`` (no other keys)."""
    data = yield from _parse(body, max_items)
    errors: list = []
    _check_keys(data, ("items",), {"items", "scheme"}, errors)
    scheme = _scheme(data, errors)
    items = (yield from _validate_each(data["items"], _ITEM, "items", errors)) if "items" in data else []
    if errors:
        raise RequestInvalid(errors)
    return ScoreJob(scheme, items)


def parse_reward_request(body: bytes, max_items: int) -> Generator[None, None, RewardJob]:
    """``POST /get_reward``: ``{"query", "prompts"?, "labels", "scheme"?}``; other keys are ignored."""
    data = yield from _parse(body, max_items)
    errors: list = []
    _check_keys(data, ("query", "labels"), None, errors)
    scheme = _scheme(data, errors)
    queries = (yield from _validate_each(data["query"], _STR, "query", errors)) if "query" in data else []
    labels = (yield from _validate_each(data["labels"], _GOLD, "labels", errors)) if "labels" in data else []
    prompts = data.get("prompts")
    if prompts is not None:
        prompts = yield from _validate_each(prompts, _STR, "prompts", errors)
    if not errors:
        n = len(queries)
        if len(labels) != n:
            errors.append(_error("body", f"'labels' has {len(labels)} entries but 'query' has {n}", "value_error"))
        if prompts is not None and len(prompts) != n:
            errors.append(_error("body", f"'prompts' has {len(prompts)} entries but 'query' has {n}", "value_error"))
    if errors:
        raise RequestInvalid(errors)
    return RewardJob(scheme, queries, prompts, labels)
