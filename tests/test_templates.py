"""Prompt templates, and never a duplicated system prompt when the chat template injects a default one."""
from __future__ import annotations

import pytest

from mathrl_core.templates import (BOXED_INSTRUCTION, GSM8K_REASONING_SYSTEM, TEMPLATES, PromptTemplate,
                                    build_prompt, build_sft_example, detect_default_system_prompt, encode_prompt,
                                    end_of_turn, get_template, register_template)
from trainer.models.tiny import train_tokenizer

Q = "What is 2 + 3?"
CORPUS = ["What is 2 + 3? The answer is \\boxed{5}.", BOXED_INSTRUCTION, GSM8K_REASONING_SYSTEM] * 5

# The structure of Qwen2.5(-Math)'s chat template (non-tool branch): a default system block when the
# conversation does not start with one; Qwen2.5-Math's default is the boxed instruction.
QWEN25_LIKE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nDEFAULT<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or "
    "(message.role == 'assistant') %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# A template that always writes its default and then renders any system message as another block.
STUBBORN = (
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, vocab_size=400)


def _with_template(tok, template: str):
    t = tok.__class__(tokenizer_object=tok.backend_tokenizer, eos_token=tok.eos_token, pad_token=tok.pad_token,
                      padding_side="left")
    t.chat_template = template
    return t


def test_registry_and_plain_renderings(tok):
    assert {"qwen_boxed", "r1_zero", "deepseek_distill", "gsm8k_reasoning", "raw"} <= set(TEMPLATES)
    assert build_prompt(tok, Q, "qwen_boxed") == (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n")
    r1 = build_prompt(tok, Q, "r1_zero")
    assert r1.startswith("A conversation between User and Assistant.") and "<answer> </answer>" in r1
    assert r1.endswith("\nUser: What is 2 + 3?\nAssistant: <think>")
    assert get_template("r1_zero").stop == ("</answer>",)
    assert build_prompt(tok, Q, "deepseek_distill") == (
        "<|im_start|>user\nWhat is 2 + 3?\nPlease reason step by step, and put your final answer within "
        "\\boxed{}.<|im_end|>\n<|im_start|>assistant\n<think>\n")
    assert build_prompt(tok, Q, "gsm8k_reasoning") == (
        "<|im_start|>system\n\nRespond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n"
        "</answer>\n<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n")
    assert build_prompt(tok, Q, "raw") == Q


def test_errors(tok):
    with pytest.raises(ValueError, match="unknown prompt template 'nope'.*qwen_boxed"):
        build_prompt(tok, Q, "nope")
    with pytest.raises(ValueError, match="non-empty"):
        build_prompt(tok, "  ", "raw")
    no_chat = _with_template(tok, None)
    with pytest.raises(ValueError, match="no chat template"):
        build_prompt(no_chat, Q, "qwen_boxed")
    assert build_prompt(no_chat, Q, "r1_zero").endswith("<think>")  # plain-text templates need none
    with pytest.raises(ValueError, match="already registered"):
        register_template(PromptTemplate("raw", raw_format="{question}"))


def test_default_system_prompt_is_not_duplicated(tok):
    math_tok = _with_template(tok, QWEN25_LIKE.replace("DEFAULT", BOXED_INSTRUCTION.replace("\\", "\\\\")))
    assert detect_default_system_prompt(math_tok) == BOXED_INSTRUCTION
    assert detect_default_system_prompt(tok) is None
    for name in ("qwen_boxed", "deepseek_distill"):
        prompt = build_prompt(math_tok, Q, name)
        assert prompt.count(BOXED_INSTRUCTION) == 1, prompt
        assert prompt.count("<|im_start|>system") == 1
    assert build_prompt(math_tok, Q, "qwen_boxed") == build_prompt(tok, Q, "qwen_boxed")
    # a different template system prompt replaces the default, it is not added to it
    gsm = build_prompt(math_tok, Q, "gsm8k_reasoning")
    assert gsm.count("<|im_start|>system") == 1 and BOXED_INSTRUCTION not in gsm and "<reasoning>" in gsm
    # Qwen2.5-Instruct-like default: replaced by ours
    inst_tok = _with_template(tok, QWEN25_LIKE.replace("DEFAULT", "You are Qwen, created by Alibaba Cloud."))
    assert detect_default_system_prompt(inst_tok) == "You are Qwen, created by Alibaba Cloud."
    p = build_prompt(inst_tok, Q, "qwen_boxed")
    assert p.count("<|im_start|>system") == 1 and "Qwen, created" not in p and BOXED_INSTRUCTION in p


def test_stubborn_template_keeps_a_single_system_prompt(tok, caplog):
    stubborn = _with_template(tok, STUBBORN)
    assert detect_default_system_prompt(stubborn) == "You are a helpful assistant."
    with caplog.at_level("WARNING"):
        p = build_prompt(stubborn, Q, "qwen_boxed")
    assert p.count("<|im_start|>system") == 1 and "duplicated system prompt" in caplog.text


def test_sft_example_and_end_of_turn(tok):
    prompt, completion = build_sft_example(tok, Q, "2 + 3 = 5. The answer is \\boxed{5}.", "qwen_boxed")
    assert prompt == build_prompt(tok, Q, "qwen_boxed")
    assert completion == "2 + 3 = 5. The answer is \\boxed{5}.<|im_end|>"
    assert end_of_turn(tok, "r1_zero") == tok.eos_token
    _, c = build_sft_example(tok, Q, "<think>\nok</think> 5", "deepseek_distill")
    assert c == "ok</think> 5<|im_end|>"


def test_encode_prompt_bos_handling(tok):
    assert encode_prompt(tok, Q) == tok(Q, add_special_tokens=False)["input_ids"]
    bos_tok = tok.__class__(tokenizer_object=tok.backend_tokenizer, bos_token="<|im_start|>", eos_token="<|endoftext|>")
    from tokenizers import processors

    bos_id = bos_tok.convert_tokens_to_ids("<|im_start|>")
    bos_tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|im_start|> $A", special_tokens=[("<|im_start|>", bos_id)])
    plain = encode_prompt(bos_tok, Q)
    assert plain[0] == bos_id and plain.count(bos_id) == 1
    already = encode_prompt(bos_tok, "<|im_start|>" + Q)
    assert already.count(bos_id) == 1 and already == plain


@pytest.mark.parametrize("template,expected", [
    # ChatML with a BOS-like special token in front and no default: nothing injected
    ("{{- '<|endoftext|>' }}" + QWEN25_LIKE.split("{%- else %}")[0] + "{%- endif %}"
     + QWEN25_LIKE.split("{%- endif %}", 1)[1], None),
    # Llama-3.1-like: a system block is always written; a given system message is merged into it
    ("{{- '<|im_start|>system\\nDate: today\\n\\n' }}{%- if messages[0]['role'] == 'system' %}"
     "{{- messages[0]['content'] }}{%- endif %}{{- '<|im_end|>\\n' }}"
     "{%- for m in messages %}{%- if m.role != 'system' %}{{- '<|im_start|>' + m.role + '\\n' + m.content + "
     "'<|im_end|>\\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
     "{%- endif %}", None),
    (STUBBORN, "You are a helpful assistant."),
    (QWEN25_LIKE.replace("DEFAULT", "Be brief."), "Be brief."),
])
def test_detect_default_system_prompt_shapes(tok, template, expected):
    t = _with_template(tok, template)
    assert detect_default_system_prompt(t) == expected
    prompt = build_prompt(t, Q, "qwen_boxed")
    assert prompt.count(BOXED_INSTRUCTION) <= 1 and prompt.count("<|im_start|>system") == 1
