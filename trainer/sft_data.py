"""SFT data: (question, response) records -> token ids with a loss mask -> padded or packed micro-batches.

One example is the RL prompt followed by the response and the end-of-turn text
(``mathrl_core.templates.build_sft_example``), so a model fine-tuned here is prompted by ``rl-train`` exactly
as it was trained::

    input_ids = [ p1 p2 ... pP | r1 r2 ... rR <|im_end|> ]
    labels    = [ -100 ...  -100 | r1 r2 ... rR <|im_end|> ]     loss on response tokens only

Labels are aligned with ``input_ids`` (HF convention): the logits at position ``i`` predict ``labels[i + 1]``.

Two ways to batch a micro-batch (both give the same per-token losses, see ``tests/test_sft.py``):

- padded: examples right-padded to the longest one, ``attention_mask`` marks real tokens;
- packed: examples laid end to end in rows of ``pack_length`` tokens with ``position_ids`` restarting at 0 for
  every example and no ``attention_mask``. Hugging Face then builds a block-diagonal causal mask from the
  position ids (``transformers.masking_utils.find_packed_sequence_indices``), so an example never attends to
  its neighbours. Fewer pad tokens: faster when lengths vary.

Field mapping (first match wins unless keys are given): question ``question|problem|prompt|query``, response
``response|solution|completion|output|generation``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from mathrl_core.records import QUESTION_KEYS, PromptRecord, load_records, load_rows
from mathrl_core.templates import build_sft_example, encode_prompt

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
RESPONSE_KEYS = ("response", "solution", "completion", "output", "generation")


@dataclass
class SFTExample:
    """One tokenised example: ``input_ids`` and ``labels`` of equal length (prompt labels are -100)."""

    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_target_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


@dataclass
class MicroBatch:
    """Tensors for one forward pass. ``attention_mask`` is None for packed rows (``position_ids`` carry the
    example boundaries), ``position_ids`` is None for padded rows (HF counts positions from 0)."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: Optional[torch.Tensor] = None
    position_ids: Optional[torch.Tensor] = None

    @property
    def num_target_tokens(self) -> int:
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())

    def to(self, device) -> "MicroBatch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return MicroBatch(move(self.input_ids), move(self.labels), move(self.attention_mask),
                          move(self.position_ids))


def pick_response_key(rows_first: dict, response_key: Optional[str], where: str) -> str:
    if response_key is not None:
        if response_key not in rows_first:
            raise KeyError(f"{where}: response_key {response_key!r} not in record 0 (fields: {sorted(rows_first)})")
        return response_key
    for key in RESPONSE_KEYS:
        if isinstance(rows_first.get(key), str) and rows_first[key].strip():
            return key
    raise KeyError(f"{where}: no response field found; tried {list(RESPONSE_KEYS)}, record 0 has "
                   f"{sorted(rows_first)}; pass data.response_key=... to choose one")


def load_sft_records(source: str, split: str = "train", question_key: Optional[str] = None,
                     response_key: Optional[str] = None, limit: Optional[int] = None) -> list[PromptRecord]:
    """(question, response) records from a file / directory / data-dir name / hub id (``load_records``'s
    sources). ``PromptRecord.answer`` holds the response text. Records with an empty question or response are
    skipped with a warning (``load_records``)."""
    rows, where = load_rows(str(source), split)
    if not rows:
        raise ValueError(f"{where}: no records")
    key = pick_response_key(rows[0], response_key, where)
    if question_key is None:
        question_key = next((k for k in QUESTION_KEYS if rows[0].get(k)), None)
    return load_records(source, split=split, question_key=question_key, answer_key=key, limit=limit)


def tokenize_example(tokenizer, question: str, response: str, template: str = "qwen_boxed") -> SFTExample:
    """Prompt (rendered like the RL prompt) + response + end-of-turn, with the prompt masked out of the loss.

    The prompt and the completion are tokenised separately and concatenated, so the boundary is exact (a BPE
    merge across it cannot move tokens between prompt and response).
    """
    prompt, completion = build_sft_example(tokenizer, question, response, template)
    p_ids = encode_prompt(tokenizer, prompt)
    c_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if not c_ids:
        raise ValueError(f"empty response for question {question[:80]!r}")
    return SFTExample(p_ids + c_ids, [IGNORE_INDEX] * len(p_ids) + list(c_ids))


def tokenize_records(tokenizer, records: Sequence[PromptRecord], template: str, max_len: int) -> list[SFTExample]:
    """Tokenise records; examples longer than ``max_len`` tokens are dropped (counted and logged), never
    truncated (a truncated target would teach the model to stop mid-solution without an end of turn).
    A record with a ``template`` field uses that prompt template instead of ``template`` (a mixture of modes,
    e.g. chain-of-thought and tool-integrated demonstrations, as Qwen2.5-Math-Instruct was trained on)."""
    out, dropped = [], 0
    for r in records:
        ex = tokenize_example(tokenizer, r.question, str(r.answer), r.extra.get("template") or template)
        if len(ex) > max_len:
            dropped += 1
            continue
        out.append(ex)
    if dropped:
        logger.warning("dropped %d of %d SFT examples longer than max_len=%d tokens", dropped, len(records), max_len)
    if not out:
        raise ValueError(f"no SFT example fits max_len={max_len}")
    return out


def pad_batch(examples: Sequence[SFTExample], pad_token_id: int) -> MicroBatch:
    """Right-pad examples to the longest; padding has label -100 and attention 0."""
    T = max(len(e) for e in examples)
    ids = torch.full((len(examples), T), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), T), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), T), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e)
        ids[i, :n] = torch.as_tensor(e.input_ids)
        labels[i, :n] = torch.as_tensor(e.labels)
        mask[i, :n] = 1
    return MicroBatch(ids, labels, attention_mask=mask)


def pack_rows(lengths: Sequence[int], pack_length: int) -> list[list[int]]:
    """Group example indices into rows of at most ``pack_length`` tokens (first-fit decreasing)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda j: (-lengths[j], j)):
        n = lengths[i]
        if n > pack_length:
            raise ValueError(f"example {i} has {n} tokens, more than pack_length={pack_length}")
        slot = next((r for r, free in enumerate(room) if free >= n), None)
        if slot is None:
            rows.append([i])
            room.append(pack_length - n)
        else:
            rows[slot].append(i)
            room[slot] -= n
    return rows


def packed_batch(examples: Sequence[SFTExample], pad_token_id: int, pack_length: int) -> MicroBatch:
    """One packed row of ``examples`` (their total length must fit ``pack_length``), padded to the longest row
    of the batch only, i.e. to the row's own length here. Position ids restart at 0 for each example; the
    padding tail is its own "example" (positions 0, 1, ...) with label -100."""
    total = sum(len(e) for e in examples)
    if total > pack_length:
        raise ValueError(f"{total} tokens do not fit pack_length={pack_length}")
    ids, labels, pos = [], [], []
    for e in examples:
        ids += e.input_ids
        labels += e.labels
        pos += list(range(len(e)))
    return MicroBatch(torch.tensor([ids]), torch.tensor([labels]), None, torch.tensor([pos]))


def stack_packed(rows: Sequence[MicroBatch], pad_token_id: int) -> MicroBatch:
    """Stack packed rows into one micro-batch, padding shorter rows at the end."""
    T = max(r.input_ids.shape[1] for r in rows)
    B = len(rows)
    ids = torch.full((B, T), pad_token_id, dtype=torch.long)
    labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    pos = torch.zeros((B, T), dtype=torch.long)
    for i, r in enumerate(rows):
        n = r.input_ids.shape[1]
        ids[i, :n] = r.input_ids[0]
        labels[i, :n] = r.labels[0]
        pos[i, :n] = r.position_ids[0]
        pos[i, n:] = torch.arange(T - n)  # the padding tail: a separate block, attends only to itself
    return MicroBatch(ids, labels, None, pos)


def micro_batches(examples: Sequence[SFTExample], pad_token_id: int, micro_batch_size: int,
                  packing: bool = False, pack_length: int = 2048) -> list[MicroBatch]:
    """Split one optimizer step's examples into micro-batches.

    Unpacked: ``micro_batch_size`` examples each, right-padded. Packed: examples first-fit into rows of
    ``pack_length`` tokens, ``micro_batch_size`` rows per micro-batch.
    """
    if micro_batch_size < 1:
        raise ValueError(f"micro_batch_size must be >= 1, got {micro_batch_size}")
    if not packing:
        return [pad_batch(examples[i:i + micro_batch_size], pad_token_id)
                for i in range(0, len(examples), micro_batch_size)]
    rows = [packed_batch([examples[j] for j in row], pad_token_id, pack_length)
            for row in pack_rows([len(e) for e in examples], pack_length)]
    return [stack_packed(rows[i:i + micro_batch_size], pad_token_id) for i in range(0, len(rows), micro_batch_size)]


def token_nll_sum(model, mb: MicroBatch) -> torch.Tensor:
    """Sum over target tokens of ``-log p(label | prefix)`` (fp32 log-softmax), a scalar with a graph.

        L_sum = - sum_{i : labels[i+1] != -100} log softmax(logits[i])[labels[i+1]]

    The caller divides by the step's total number of target tokens (token-mean over the whole optimizer step,
    so gradient accumulation and packing do not change the update). For HF causal LMs with the usual
    ``model.model`` + ``lm_head`` layout the LM head runs on the target positions only: prompt and padding
    positions never materialise vocabulary-sized fp32 logits (with a 150K vocabulary that is most of the
    memory of a long packed micro-batch).
    """
    from mathrl_core.models.loading import unwrap_model

    kwargs = {"input_ids": mb.input_ids, "use_cache": False}
    if mb.attention_mask is not None:
        kwargs["attention_mask"] = mb.attention_mask
    if mb.position_ids is not None:
        kwargs["position_ids"] = mb.position_ids
    target = mb.labels[:, 1:]
    keep = target != IGNORE_INDEX
    base = unwrap_model(model)
    body, head = getattr(base, "model", None), getattr(base, "get_output_embeddings", lambda: None)()
    cfg = getattr(base, "config", None)
    plain_head = (getattr(cfg, "final_logit_softcapping", None) is None  # Gemma-2 caps logits after the head
                  and getattr(cfg, "logit_scale", None) in (None, 1.0))  # Cohere scales them
    if plain_head and isinstance(body, torch.nn.Module) and isinstance(head, torch.nn.Module):
        hidden = body(**kwargs).last_hidden_state[:, :-1]
        logits = head(hidden[keep]).float()
        return torch.nn.functional.cross_entropy(logits, target[keep], reduction="sum")
    logits = model(**kwargs).logits[:, :-1].float()
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                             ignore_index=IGNORE_INDEX, reduction="sum")
