"""Tiny local models for tests, benchmarks and the CPU quickstart (no hub needed).

A byte-level BPE tokenizer trained with the ``tokenizers`` library on a small corpus (synthetic problems,
prompt-template texts, digits and math symbols), wrapped in ``PreTrainedTokenizerFast`` with Qwen's special
tokens and a Qwen-style ChatML chat template, plus a Qwen2-architecture model built from a config.
:func:`save_tiny_checkpoint` writes both to a directory that the real loading code (``load_tokenizer``,
``load_causal_lm``, vLLM) reads like any hub checkpoint. Deterministic given the seed.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional

import torch

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]
# Qwen2's pre-tokenizer split: single digits, letter runs, punctuation runs, newlines, spaces.
SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
MATH_SYMBOLS = ("0 1 2 3 4 5 6 7 8 9 + - * / = ( ) [ ] { } < > ^ _ . , : ; ! ? % $ # \\boxed{} \\frac{}{} "
                "\\sqrt{} \\cdot \\times \\div \\pi \\left( \\right) <think> </think> <answer> </answer> "
                "<reasoning> </reasoning> #### The answer is")


def chatml_template(default_system_prompt: str | None = None) -> str:
    """A Qwen-style ChatML Jinja template. With ``default_system_prompt`` it behaves like Qwen2.5(-Math):
    that system block is injected whenever the conversation does not start with a system message."""
    default = ""
    if default_system_prompt is not None:
        literal = json.dumps(default_system_prompt)  # a valid Jinja string literal
        default = ("{%- else %}{{- '" + IM_START + "system\\n' + " + literal + " + '" + IM_END + "\\n' }}")
    return (
        "{%- if messages and messages[0]['role'] == 'system' %}"
        "{{- '" + IM_START + "system\\n' + messages[0]['content'] + '" + IM_END + "\\n' }}"
        + default + "{%- endif %}"
        "{%- for message in messages %}"
        "{%- if not (loop.first and message['role'] == 'system') %}"
        "{{- '" + IM_START + "' + message['role'] + '\\n' + message['content'] + '" + IM_END + "\\n' }}"
        "{%- endif %}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '" + IM_START + "assistant\\n' }}{%- endif %}"
    )


# The templates whose fixed texts every default tiny tokenizer learns. A fixed list, not the registry: registering
# a template must not change every tiny model built afterwards (and with them the quickstart's figures).
CORPUS_TEMPLATES = ("qwen_boxed", "r1_zero", "deepseek_distill", "gsm8k_reasoning", "raw")


def default_corpus(seed: int = 0, n_problems: int = 2000) -> list[str]:
    """Synthetic train problems and solutions, the prompt templates' fixed texts, digits and math symbols."""
    from trainer.data.synthetic import generate_problems
    from mathrl_core.templates import TEMPLATES

    texts = [MATH_SYMBOLS, " ".join(str(i) for i in range(1000))]
    for t in (TEMPLATES[name] for name in CORPUS_TEMPLATES):
        texts.extend(x for x in (t.system, t.instruction, t.raw_format, t.generation_prefix) if x)
    for p in generate_problems(n_problems, "train", seed=seed):
        texts.append(p.question)
        texts.append(p.solution)
    return texts


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 1000, padding_side: str = "left",
                    default_system_prompt: str | None = None, model_max_length: int = 4096):
    """Train a byte-level BPE tokenizer and wrap it as a ``PreTrainedTokenizerFast``.

    ``<|endoftext|>`` is the pad and eos token, ``<|im_start|>``/``<|im_end|>`` delimit chat turns.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(corpus), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=ENDOFTEXT, pad_token=ENDOFTEXT,
                                   additional_special_tokens=[IM_START, IM_END], padding_side=padding_side,
                                   model_max_length=model_max_length, clean_up_tokenization_spaces=False)
    fast.chat_template = chatml_template(default_system_prompt)
    return fast


def build_model(tokenizer, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4, num_kv_heads: int = 2,
                intermediate_size: int | None = None, max_position_embeddings: int = 2048,
                tie_word_embeddings: bool = True, seed: int = 0):
    """A randomly initialised Qwen2ForCausalLM sized for ``tokenizer`` (deterministic given ``seed``;
    the global RNG is left untouched)."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    eot = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        intermediate_size=intermediate_size or 4 * hidden_size, max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings, bos_token_id=None, eos_token_id=eot, pad_token_id=eot,
        use_sliding_window=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=[im_end, eot], pad_token_id=eot, bos_token_id=None)
    return model


def save_tiny_checkpoint(out_dir: str | Path, corpus: Iterable[str] | None = None, vocab_size: int = 1000,
                         seed: int = 0, default_system_prompt: str | None = None, **model_kwargs) -> Path:
    """Train the tokenizer, build the model and ``save_pretrained`` both into ``out_dir``. Returns the path.

    ``model_kwargs`` go to :func:`build_model` (hidden_size, num_layers, num_heads, ...).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(corpus if corpus is not None else default_corpus(seed), vocab_size=vocab_size,
                                default_system_prompt=default_system_prompt)
    model = build_model(tokenizer, seed=seed, **model_kwargs)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    return out


@dataclass
class TinyModelConfig:
    """``model.tiny`` of a recipe: build this tiny model + tokenizer locally (no hub) when ``model.pretrain`` is
    empty, into ``out_dir`` (default ``<logging.output_dir>/tiny_model``); reused when it is already there."""

    vocab_size: int = 1000
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: Optional[int] = None
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = True
    default_system_prompt: Optional[str] = None
    seed: int = 0
    out_dir: Optional[str] = None

    def ensure(self, default_dir: str | Path) -> Path:
        """The checkpoint directory, built first if it does not hold one yet."""
        out = Path(self.out_dir or default_dir)
        if not (out / "config.json").is_file():
            opts = asdict(self)
            opts.pop("out_dir")
            save_tiny_checkpoint(out, **opts)
        return out
