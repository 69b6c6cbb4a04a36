"""models.toml: pairs, variable expansion, and errors that name the file and key."""
from pathlib import Path

import pytest

from tokint_local import config
from tokint_local.config import SHIPPED_MODELS, expand, load_models, models_path
from tokint_local.errors import ConfigError, ModelFileMissing, UnknownPair


def write(tmp_path, text):
    p = tmp_path / "models.toml"
    p.write_text(text)
    return p


def test_expand_handles_vars_defaults_and_home(monkeypatch):
    monkeypatch.setenv("TOKINT_X", "/data")
    monkeypatch.delenv("TOKINT_UNSET", raising=False)
    assert expand("$TOKINT_X/a") == "/data/a"
    assert expand("${TOKINT_X}/b") == "/data/b"
    assert expand("${TOKINT_UNSET:-/fallback}/c") == "/fallback/c"
    assert expand("~/m.gguf") == str(Path.home() / "m.gguf")
    assert expand("${TOKINT_UNSET:-~/d}") == str(Path.home() / "d")


def test_pairs_load_with_settings_and_default(tmp_path):
    p = write(tmp_path, """
default_pair = "a"
[pairs.a]
base = { path = "/x/base.gguf", n_ctx = 1024, n_threads = 2 }
reasoning = { hf_repo = "org/repo", file = "r.gguf", revision = "main" }
""")
    models = load_models(p)
    pair = models.pair(None)
    assert pair.name == "a" and pair.base.path == Path("/x/base.gguf") and pair.base.n_ctx == 1024
    assert pair.reasoning.hf_repo == "org/repo" and pair.reasoning.revision == "main"


@pytest.mark.parametrize(
    "body,message",
    [
        ('[pairs.a]\nbase = { path = "x" }\n', "pairs.a: missing 'reasoning'"),
        ('[pairs.a]\nbase = { path = "x", colour = 1 }\nreasoning = { path = "y" }\n', "pairs.a.base: unknown key 'colour'"),
        ('[pairs.a]\nbase = { path = 5 }\nreasoning = { path = "y" }\n', "pairs.a.base.path: must be a string"),
        ('[pairs.a]\nbase = { path = "x", n_ctx = "big" }\nreasoning = { path = "y" }\n', "n_ctx: must be an integer"),
        ('[pairs.a]\nbase = { hf_repo = "o/r" }\nreasoning = { path = "y" }\n', "'hf_repo' needs 'file'"),
        ('[pairs.a]\nbase = { path = "x", hf_repo = "o/r", file = "f" }\nreasoning = { path = "y" }\n', "exactly one of"),
        ('default_pair = "zz"\n', "default_pair 'zz'"),
        ('[pairs.a.b]\nbase = { path = "x" }\n', 'must be quoted: [pairs."a.b"]'),
        ('pairs = [', "not valid TOML"),
        ('colour = 1\n', "unknown top-level key 'colour'"),
    ],
)
def test_errors_name_file_and_key(tmp_path, body, message):
    p = write(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_models(p)
    assert message in str(err.value) and str(p) in str(err.value)


def test_unknown_pair_lists_the_known_ones(tmp_path):
    p = write(tmp_path, '[pairs.a]\nbase = { path = "x" }\nreasoning = { path = "y" }\n')
    with pytest.raises(UnknownPair, match=r"unknown pair 'b' \(pairs in .*: a\)"):
        load_models(p).pair("b")


def test_missing_files_say_how_to_get_them(tmp_path):
    p = write(tmp_path, '[pairs.a]\nbase = { path = "/nope/b.gguf" }\nreasoning = { hf_repo = "o/r", file = "r.gguf" }\n')
    pair = load_models(p).pair("a")
    with pytest.raises(ModelFileMissing, match="/nope/b.gguf"):
        pair.base.local_path()
    with pytest.raises(ModelFileMissing, match="o/r:r.gguf is not downloaded"):
        pair.reasoning.local_path()


def test_file_selection_and_home(tmp_path, monkeypatch, tokint_home):
    assert models_path() == SHIPPED_MODELS
    monkeypatch.setenv("TOKINT_MODELS", str(tmp_path / "env.toml"))
    assert models_path() == tmp_path / "env.toml"
    assert models_path(tmp_path / "flag.toml") == tmp_path / "flag.toml"
    assert config.tokint_home() == tokint_home
    with pytest.raises(ConfigError, match="models file not found"):
        load_models(tmp_path / "missing.toml")


def test_shipped_file_is_valid_and_names_the_two_pairs():
    models = load_models(SHIPPED_MODELS)
    assert {"qwen2.5-coder", "qwen2.5-coder-local", "qwen3-0.6b", "qwen2.5-math-r1"} <= set(models.pairs)
    assert models.default_pair == "qwen2.5-coder"


def test_errors_carry_the_line_of_the_key(tmp_path):
    p = write(tmp_path, """default_pair = "a"

[pairs.a]
description = "ok"
base = { path = "/x/b.gguf", n_ctx = 2048 }
reasoning = { path = "/x/r.gguf", colour = "blue" }
""")
    with pytest.raises(ConfigError, match=rf"^{p}:6: pairs.a.reasoning: unknown key 'colour'"):
        load_models(p)
    p = write(tmp_path, """[pairs.a]
base = { path = "/x/b.gguf" }
reasoning = { path = "/x/r.gguf" }

[pairs.a.defaults]
budget = 4
threshold = -2.0
""")
    with pytest.raises(ConfigError, match=rf"^{p}:7: pairs.a.defaults.threshold: must be a number >= 0"):
        load_models(p)
    p = write(tmp_path, '[pairs.a]\nbase = { path = "/x/b.gguf" }\nreasoning = { path = "/x/r.gguf" }\n[pairs.a.defaults]\nspeed = 3\n')
    with pytest.raises(ConfigError, match=rf"^{p}:5: pairs.a.defaults: unknown key 'speed'"):
        load_models(p)
    p = write(tmp_path, '[pairs.a]\nbase = { path = "/x/b.gguf", prompt_format = "alpaca" }\nreasoning = { path = "/x/r.gguf" }\n')
    with pytest.raises(ConfigError, match=rf"^{p}:2: .*prompt_format: must be one of gguf, raw, chatml, llama3"):
        load_models(p)
    p = write(tmp_path, 'default_pair = "a"\nx = = 1\n[pairs.a]\n')
    with pytest.raises(ConfigError, match=r"line 2"):  # TOML syntax errors say where, too
        load_models(p)


def test_pair_defaults_are_parsed(tmp_path):
    p = write(tmp_path, """[pairs.a]
base = { path = "/x/b.gguf" }
reasoning = { path = "/x/r.gguf" }
[pairs.a.defaults]
budget = "unlimited"
threshold = "inf"
max_tokens = 64
divergence = "js"
""")
    import math

    assert load_models(p).pair("a").defaults == {"budget": None, "threshold": math.inf, "max_tokens": 64, "divergence": "js"}


def test_the_user_file_adds_and_overrides_pairs(tmp_path, tokint_home):
    shipped = load_models(SHIPPED_MODELS)
    (tokint_home / "models.toml").write_text("""default_pair = "mine"
[pairs.mine]
base = { path = "/m/b.gguf" }
reasoning = { path = "/m/r.gguf" }
[pairs."qwen2.5-coder"]
description = "my own copy"
base = { path = "/mine/b.gguf" }
reasoning = { path = "/mine/r.gguf" }
""")
    merged = load_models(SHIPPED_MODELS)
    assert merged.default_pair == "mine" and merged.user_path == (tokint_home / "models.toml").resolve()
    assert merged.pair("qwen2.5-coder").base.path == Path("/mine/b.gguf")
    assert merged.pair("qwen2.5-coder").description == "my own copy"
    assert set(shipped.pairs) | {"mine"} == set(merged.pairs)
    (tokint_home / "models.toml").write_text('[pairs.x]\nbase = { path = 3 }\nreasoning = { path = "/r" }\n')
    with pytest.raises(ConfigError, match=rf"{tokint_home / 'models.toml'}:2: "):
        load_models(SHIPPED_MODELS)  # an error in the user file names the user file
