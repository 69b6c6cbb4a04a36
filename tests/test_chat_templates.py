"""Chat templates as GGUF files carry them: the sandbox renders what transformers' apply_chat_template
renders (tojson with its arguments and no HTML escaping, {% generation %}, loop controls,
raise_exception, strftime_now, the usual variables), and any failure is a ``template_error``."""
import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REAL_DIR, DaemonProcess
from gguf_factory import TinySpec, write_tiny_model
from tokint_local.client import Client
from tokint_local.errors import TemplateError, TokintError
from tokint_local.gguf_meta import read_metadata
from tokint_local.prompt import format_prompt

CHATML_END = "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
TURNS = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"


def render(template: str, prompt: str = "Hi", bos: str = "<s>", eos: str = "</s>") -> str:
    return format_prompt(prompt, template, bos, eos, raw=False).text


def test_tojson_takes_transformers_arguments_and_does_not_escape_html():
    messages = [{"role": "user", "content": "é <b>&'"}]
    assert render("{{ messages | tojson }}", "é <b>&'") == json.dumps(messages, ensure_ascii=False)
    assert render("{{ 'é<>&' | tojson(ensure_ascii=False) }}") == '"é<>&"'
    assert render("{{ 'é' | tojson(ensure_ascii=True) }}") == '"\\u00e9"'
    assert render("{{ {'b': 1, 'a': [1, 2]} | tojson(indent=2, sort_keys=True) }}") == json.dumps(
        {"b": 1, "a": [1, 2]}, indent=2, sort_keys=True)
    assert render("{{ {'a': 1, 'b': 2} | tojson(separators=(',', ':')) }}") == '{"a":1,"b":2}'


def test_generation_blocks_render_their_body():
    template = ("{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}"
                "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
                "{% if add_generation_prompt %}{% generation %}<|im_start|>assistant\n{% endgeneration %}{% endif %}")
    assert render(template) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_loop_controls():
    template = ("{% for word in ['a', 'skip', 'b', 'stop', 'c'] %}{% if word == 'skip' %}{% continue %}{% endif %}"
                "{% if word == 'stop' %}{% break %}{% endif %}{{ word }}{% endfor %}|" + TURNS + CHATML_END)
    assert render(template).startswith("ab|<|im_start|>user\nHi")


def test_strftime_now_and_the_usual_variables():
    template = ("{{ strftime_now('%Y') }}|{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools is none }}|"
                "{{ documents is none }}|{{ messages | length }}|{{ messages[0]['role'] }}|{{ unknown_variable }}|")
    year = datetime.datetime.now().strftime("%Y")
    assert render(template, bos="<B>", eos="<E>") in (f"{y}|<B>|<E>|True|True|True|1|user||" for y in (year, str(int(year) + 1)))


def test_raise_exception_is_a_template_error_with_the_templates_message():
    template = "{% if messages[0].role == 'user' %}{{ raise_exception('Only system messages here, please.') }}{% endif %}"
    with pytest.raises(TemplateError, match="Only system messages here, please.") as caught:
        render(template)
    assert caught.value.code == "template_error"


@pytest.mark.parametrize("template, said", [
    ("{% for m in messages %}", "Unexpected end of template"),                 # a syntax error
    ("{{ 1 + 'a' }}", "unsupported operand"),                                  # a TypeError
    ("{{ 1 // 0 }}", "by zero"),                                      # a ZeroDivisionError
    ("{{ messages[0].content.nope() }}", "has no attribute 'nope'"),           # an undefined called
    ("{{ ''.__class__.__subclasses__() }}", "unsafe"),                      # the sandbox holds
    ("{{ 'x' | tojson(bogus=1) }}", "bogus"),                                  # a filter given a wrong argument
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion"),          # runs away
])
def test_any_failure_while_rendering_is_a_template_error(template, said):
    with pytest.raises(TemplateError, match=said) as caught:
        render(template)
    assert caught.value.code == "template_error"


# -- the templates of real GGUF files ------------------------------------------------------------

KNOWN = {  # what transformers' apply_chat_template renders for [{"role": "user", "content": PROMPT}]
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf": (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"),
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf": (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"),
    "smollm2-135m-instruct-q4_1.gguf": (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"),
}
PROMPT = 'Write "tojson" & <html> in {braces}.'


def cached_files() -> list[Path]:
    return sorted(REAL_DIR.glob("*.gguf")) if REAL_DIR.is_dir() else []


@pytest.mark.real
@pytest.mark.parametrize("path", cached_files() or [pytest.param(None, marks=pytest.mark.skip(reason=f"no GGUF files in {REAL_DIR}"))],
                         ids=lambda p: p.name if p else "none")
def test_templates_of_real_gguf_files_render(path):
    meta = read_metadata(path, ["tokenizer.chat_template", "tokenizer.ggml.tokens", "tokenizer.ggml.bos_token_id",
                                "tokenizer.ggml.eos_token_id"])
    template = meta.get("tokenizer.chat_template")
    if template is None:
        pytest.skip(f"{path.name} carries no chat template")
    tokens = meta["tokenizer.ggml.tokens"]
    bos = tokens[meta["tokenizer.ggml.bos_token_id"]] if "tokenizer.ggml.bos_token_id" in meta else ""
    eos = tokens[meta["tokenizer.ggml.eos_token_id"]] if "tokenizer.ggml.eos_token_id" in meta else ""
    text = format_prompt(PROMPT, template, bos, eos, raw=False)
    if path.name in KNOWN:
        assert text.text == KNOWN[path.name].format(PROMPT)
    assert (PROMPT, False) in text.pieces  # the prompt is one piece, and it is text, not template


# -- through the command line and the daemon -----------------------------------------------------

@pytest.fixture(scope="module")
def template_models(tmp_path_factory) -> Path:
    """A models.toml with a pair whose template uses transformers' constructs and one whose template refuses."""
    folder = tmp_path_factory.mktemp("templates")
    fancy = ("{% for m in messages %}{% if loop.first %}{{ {'tools': tools} | tojson(ensure_ascii=False) }}{% endif %}"
             "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
             "{% if add_generation_prompt %}{% generation %}<|im_start|>assistant\n{% endgeneration %}{% endif %}")
    refuses = "{{ raise_exception('This model only takes a system message.') }}"
    files = {name: write_tiny_model(folder / f"{name}.gguf", TinySpec(seed=5, chat_template=t))
             for name, t in (("fancy", fancy), ("refuses", refuses))}
    path = folder / "models.toml"
    path.write_text("".join(
        f'[pairs.{name}]\nbase = {{ path = "{p}", n_ctx = 256, n_threads = 1 }}\n'
        f'reasoning = {{ path = "{p}", n_ctx = 256, n_threads = 1 }}\n\n' for name, p in files.items()))
    return path


def tokint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tokint_local.cli", *args], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parent.parent)


def test_the_command_line_renders_such_templates_and_reports_a_refusal_in_one_line(template_models):
    ok = tokint("generate", "--local", "--models", str(template_models), "--pair", "fancy", "--max-tokens", "3", "hi")
    assert ok.returncode == 0, ok.stderr
    refused = tokint("generate", "--local", "--models", str(template_models), "--pair", "refuses", "hi")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "tokint: error: the chat template refused the prompt: This model only takes a system message."]


def test_the_daemon_answers_template_error_not_internal(template_models, daemon_address):
    d = DaemonProcess(template_models, daemon_address)
    try:
        with Client(daemon_address) as client:
            events = list(client.generate("hi", "fancy", max_tokens=3))
            assert events[-1].type == "summary" and events[-1].n_tokens == 3
            with pytest.raises(TokintError, match="only takes a system message") as caught:
                list(client.generate("hi", "refuses", max_tokens=3))
            assert caught.value.code == "template_error" and isinstance(caught.value, TemplateError)
    finally:
        d.stop()
