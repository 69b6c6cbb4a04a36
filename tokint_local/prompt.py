"""Putting the user's prompt into a model's own prompt format.

A model's GGUF chat template (Jinja, as Hugging Face writes it) is rendered in a sandbox with
one user message and the generation prompt; with ``raw`` the prompt goes in as plain text.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Optional

import jinja2
import jinja2.sandbox

from .errors import TokintError


class TemplateError(TokintError):
    code = "template_error"


@dataclass(frozen=True)
class PromptText:
    text: str
    format: str  # "chat_template" or "raw"
    parse_special: bool  # special-token text in a rendered template is meant as special tokens


def _raise(message: str) -> None:
    raise TemplateError(f"the chat template refused the prompt: {message}")


_ENV = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.Undefined)
_ENV.globals["raise_exception"] = _raise
_ENV.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)


NAMED_TEMPLATES = {
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
        "{{ m['content'] }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
    ),
}


def format_prompt(prompt: str, template: Optional[str], bos: str, eos: str, raw: bool, fmt: str = "gguf") -> PromptText:
    """The text a model is given for ``prompt``.

    ``fmt`` is the model's configured prompt format: "gguf" (its own chat template, or raw text when
    it has none), "raw", or a named template ("chatml", "llama3"). ``raw`` overrides it per request.
    """
    if fmt in NAMED_TEMPLATES:
        template = NAMED_TEMPLATES[fmt]
    if raw or fmt == "raw" or not template:
        return PromptText(prompt, "raw", parse_special=False)
    try:
        text = _ENV.from_string(template).render(
            messages=[{"role": "user", "content": prompt}],
            add_generation_prompt=True,
            bos_token=bos,
            eos_token=eos,
        )
    except TemplateError:
        raise
    except jinja2.TemplateError as exc:
        raise TemplateError(f"the model's chat template could not be rendered ({exc}); try --raw") from None
    return PromptText(text, "chat_template", parse_special=True)
