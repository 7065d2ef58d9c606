"""The response part of an OpenRLHF query (reward_service.prompt_split): hand-built queries, expected splits."""
from __future__ import annotations

import time

import pytest

from reward_service.prompt_split import Split, after_last_assistant_marker, find_prompt_end, split_response

SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
QUESTION = "What is 2+3?"


@pytest.mark.parametrize("query,prompt,expected", [
    ("Q: 1+1? A: 2", "Q: 1+1? A:", Split(" 2", True)),
    ("<pad><pad>Q: 1+1? A: 2", "Q: 1+1? A:", Split(" 2", True)),  # left padding kept by the decoder
    ("<s> Q:  1+1?\nA: 2", "Q: 1+1? A:", Split(" 2", True)),  # whitespace changed by detokenization
    ("Q:1+1 ?A: 2", "Q: 1+1? A:", Split(" 2", True)),  # whitespace dropped or added inside words
    ("Q: 1+1? A: 2", None, Split("Q: 1+1? A: 2", True)),
    ("Q: 1+1? A: 2", "", Split("Q: 1+1? A: 2", True)),
    ("something else", "Q:", Split("something else", False)),  # not found, no marker: everything, flagged
    ("ab ab", "ab", Split(" ab", True)),  # the first occurrence is the prompt
])
def test_split_by_prompt(query, prompt, expected):
    assert split_response(query, prompt) == expected


def test_find_prompt_end_maps_back_to_the_query():
    q = "  x\t\ty  z  tail"
    assert q[find_prompt_end(q, "xy z"):] == "  tail"
    assert find_prompt_end(q, "x y z t a i l") == len(q)
    assert find_prompt_end(q, "   ") is None and find_prompt_end(q, "xyzq") is None


def chatml(system, user):
    return f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def llama3(system, user):
    return (f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>"
            f"<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n")


def deepseek_r1(system, user):  # the R1 distills' generation prompt opens the reasoning block
    return f"<\uff5cbegin\u2581of\u2581sentence\uff5c>{system}<\uff5cUser\uff5c>{user}<\uff5cAssistant\uff5c><think>\n"


def r1_zero(system, user):
    return f"{system}\nUser: {user}\nAssistant: <think>"


@pytest.mark.parametrize("template,name,kept", [
    (chatml, "chatml", ""), (llama3, "llama3", ""), (deepseek_r1, "deepseek", "<think>\n"),
    (r1_zero, "r1_zero", "<think>"),
])
def test_truncated_prompt_falls_back_to_the_last_assistant_turn(template, name, kept):
    """OpenRLHF left-truncated the prompt: it is not in the query, but the assistant marker is."""
    prompt = template(SYSTEM, QUESTION)
    response = "2 and 3 make 5.</think> So the answer is \\boxed{5}."
    query = prompt[len(prompt) // 3:] + response  # the start of the prompt was cut off
    s = split_response(query, prompt)
    assert s == Split(kept + response, False, name)
    assert "\\boxed{}" not in s.response and QUESTION not in s.response  # never the system prompt or user turn


def test_no_prompt_given_uses_the_marker_too():
    query = chatml(SYSTEM, QUESTION) + "\\boxed{5}<|im_end|>"
    assert split_response(query, None) == Split("\\boxed{5}<|im_end|>", True, "chatml")


def test_last_marker_wins_in_a_multi_turn_prompt():
    few_shot = chatml(SYSTEM, "1+1?") + "\\boxed{2}<|im_end|>\n<|im_start|>user\n" + QUESTION + "<|im_end|>\n"
    query = few_shot + "<|im_start|>assistant\n\\boxed{5}"
    assert split_response(query, "not in the query").response == "\\boxed{5}"
    assert after_last_assistant_marker("no markers at all") is None


def test_found_prompt_ending_in_an_open_think_keeps_it_open():
    prompt = deepseek_r1("", QUESTION)
    s = split_response(prompt + "2+3=5 so \\boxed{5}", prompt)  # cut off mid-reasoning
    assert s == Split("<think>2+3=5 so \\boxed{5}", True)
    s = split_response(prompt + "<think>x</think>\\boxed{5}", prompt)  # the model wrote its own <think>
    assert s.response == "<think>x</think>\\boxed{5}"
    prompt = "Use <think> tags. Question: 2+3?"  # an instruction mentioning <think> is not an open block
    assert split_response(prompt + " \\boxed{5}", prompt).response == " \\boxed{5}"


def test_prompt_search_is_linear_time():
    """Red-team input: a 6000-character prompt against a 0.3 MB query took 6-9 s with a regex search."""
    prompt = "a " * 3000
    query = ("a" * 2999 + "b") * 100
    t0 = time.perf_counter()
    assert split_response(query, prompt) == Split(query, False)
    squeezed_hit = "x" + " a" * 3000 + "  tail"
    assert split_response(squeezed_hit, prompt) == Split(" tail", True)
    squeezed_hit = "x" + "a\n" * 3000 + "tail"  # only found with whitespace ignored
    assert split_response(squeezed_hit, prompt) == Split("\ntail", True)
    assert time.perf_counter() - t0 < 1.5  # ~10 ms; the quadratic search took seconds
