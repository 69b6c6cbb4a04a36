"""Putting a conversation (or a bare prompt) into a model's own prompt format.

A model's GGUF chat template (Jinja, as Hugging Face writes it) is rendered in a sandbox with the
conversation's messages and the generation prompt; with ``raw`` a prompt goes in as plain text.

Text is data: the template is rendered around a placeholder for each message's content, so the
result comes in pieces that say whether they are the template's own markup (which may hold
special tokens such as ``<|im_start|>``) or what a person wrote (always plain text, whatever it
looks like). ``engine.prepare_prompt`` tokenizes them accordingly.
"""
from __future__ import annotations

import datetime
import functools
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.parser
import jinja2.sandbox

from .errors import TemplateError
from .events import ChatMessage


@dataclass(frozen=True)
class PromptText:
    """The prompt in a model's format, as (text, from_template) pieces in order."""

    pieces: tuple[tuple[str, bool], ...]
    format: str  # "chat_template" or "raw"

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.pieces)


def _raise(message: str) -> None:
    raise TemplateError(f"the chat template refused the prompt: {message}")


def _tojson(value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False) -> str:
    # as transformers has it: Jinja's own tojson escapes HTML characters and takes no such arguments
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class _Generation(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}``: transformers marks the assistant's part with it; it renders its body."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller: Any) -> str:
        return caller()


# The environment transformers' apply_chat_template renders in, so a GGUF file's template (taken
# from the model's tokenizer_config.json) renders here as it does there.
_ENV = jinja2.sandbox.ImmutableSandboxedEnvironment(
    trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, jinja2.ext.loopcontrols],
)
_ENV.filters["tojson"] = _tojson
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


@functools.lru_cache(maxsize=16)
def _compile(template: str) -> jinja2.Template:
    return _ENV.from_string(template)


def render_template(template: str, messages: list[dict], bos: str, eos: str,
                    kwargs: Optional[Mapping[str, Any]] = None) -> str:
    """``template`` rendered for ``messages`` with the generation prompt; every failure is a TemplateError.

    ``kwargs`` (chat_template_kwargs, e.g. enable_thinking) become template variables, as transformers passes them.
    """
    try:
        return _compile(template).render(
            **(kwargs or {}), messages=messages, add_generation_prompt=True, bos_token=bos, eos_token=eos, tools=None,
            documents=None,
        )
    except TemplateError:
        raise
    except Exception as exc:  # a template is a program: whatever it raises is the template's fault
        said = str(exc) or type(exc).__name__
        raise TemplateError(f"the model's chat template could not be rendered ({said}); try --raw") from None


def format_prompt(prompt: str, template: Optional[str], bos: str, eos: str, raw: bool, fmt: str = "gguf",
                  kwargs: Optional[Mapping[str, Any]] = None) -> PromptText:
    """The text a model is given for ``prompt``, a one-message conversation (see format_conversation)."""
    return format_conversation([ChatMessage("user", prompt)], template, bos, eos, raw, fmt, kwargs)


def format_conversation(messages: Sequence[ChatMessage], template: Optional[str], bos: str, eos: str, raw: bool,
                        fmt: str = "gguf", kwargs: Optional[Mapping[str, Any]] = None) -> PromptText:
    """The text a model is given for a conversation, ending with the generation prompt.

    ``fmt`` is the model's configured prompt format: "gguf" (its own chat template, or raw text when
    it has none), "raw", or a named template ("chatml", "llama3"). ``raw`` overrides it per request.
    Without a template only a single user message can be given (as plain text). Content goes in
    exactly as given: a filter the template applies to a message's content (say ``| trim``) acts on
    the placeholder, not on the content.
    """
    if fmt in NAMED_TEMPLATES:
        template = NAMED_TEMPLATES[fmt]
    if raw or fmt == "raw" or not template:
        if len(messages) != 1 or messages[0].role != "user":
            why = "is set to raw text" if raw or fmt == "raw" else "has no chat template"
            raise TemplateError(
                f"a conversation of {len(messages)} messages needs a chat template and this model {why}; "
                "set prompt_format (chatml, llama3) for it in models.toml, or send one prompt")
        return PromptText(((messages[0].content, False),), "raw")
    # letters and digits only: no template filter (escaping, JSON, trimming) changes a placeholder
    tag = uuid.uuid4().hex
    contents = {f"TOKINTCONTENT{tag}N{i}E": m.content for i, m in enumerate(messages)}
    shown = [{"role": m.role, "content": name} for m, name in zip(messages, contents)]
    rendered = render_template(template, shown, bos, eos, kwargs)
    pieces: list[tuple[str, bool]] = []
    start = 0
    for found in re.finditer(f"TOKINTCONTENT{tag}N[0-9]+E", rendered):
        if found.start() > start:
            pieces.append((rendered[start:found.start()], True))
        pieces.append((contents[found.group()], False))
        start = found.end()
    if start < len(rendered):
        pieces.append((rendered[start:], True))
    return PromptText(tuple(pieces), "chat_template")
