"""Named extension points: prompt templates, rollout backends, advantage estimators are each a ``Registry``.

A registry is a dict of name -> entry that refuses to overwrite an entry silently and answers an unknown name
with an error listing the registered ones.
"""
from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(dict, Generic[T]):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def add(self, name: str, entry: T, overwrite: bool = False) -> T:
        if name in self and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = entry
        return entry

    def lookup(self, name: str) -> T:
        try:
            return self[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {', '.join(self)}") from None
