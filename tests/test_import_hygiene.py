"""The house's dependency rules, checked in a fresh interpreter (harlequin's test does the same)."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return set(out.split())


def test_library_imports_no_ui():
    loaded = modules_after("import tokint_local, tokint_local.cli, tokint_local.engine")
    assert not {m for m in loaded if m.split(".")[0] in ("textual", "rich", "tui", "daemon")}


def test_numeric_core_imports_no_network_or_llama():
    loaded = modules_after("import tokint_local.divergence, tokint_local.gate, tokint_local.sampling")
    assert not {m for m in loaded if m.split(".")[0] in ("zmq", "msgpack", "llama_cpp", "textual")}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_backend_imports_llama_cpp():
    users = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tokint_local").rglob("*.py") if "llama_cpp" in imports_of(p))
    assert users and all(u.startswith("tokint_local/backend/") for u in users), users


def test_library_never_imports_daemon_or_tui():
    for p in (ROOT / "tokint_local").rglob("*.py"):
        assert not imports_of(p) & {"daemon", "tui"}, p


def test_only_the_http_api_imports_the_http_stack():
    users = sorted(p.relative_to(ROOT).as_posix() for d in ("tokint_local", "daemon", "tui") for p in (ROOT / d).rglob("*.py")
                   if imports_of(p) & {"starlette", "uvicorn", "pydantic"})
    assert users == ["daemon/http_api.py", "daemon/http_models.py"]
    loaded = modules_after("import daemon.server, daemon.cli")  # a daemon without --http loads none of it
    assert not {m for m in loaded if m.split(".")[0] in ("starlette", "uvicorn")}
