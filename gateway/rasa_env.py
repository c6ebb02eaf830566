"""Rasa 3.6 lives in its own Python 3.10 virtualenv (it pins libraries the gateway cannot share).
This module finds Python 3.10, builds that venv from the committed exact pins, trains the model only
when its inputs change (both cached by content hash), and starts the Rasa and action servers."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from gateway.config import REPO_ROOT, Settings

log = logging.getLogger(__name__)

BOT = REPO_ROOT / "bot"
REQUIREMENTS = BOT / "requirements-rasa.txt"
# Rasa logs through common/logfilter.py: identifiers in the trackers it dumps are masked.
LOGGING = BOT / "logging.yml"
MODEL_INPUTS = [
    "bot/config.yml",
    "bot/domain.yml",
    "bot/data/**/*",
    "bot/components/*.py",
    "data/jieba/*",
    "bot/requirements-rasa.txt",
]
MISALIGNED = "Misaligned entity annotation"


class SetupError(RuntimeError):
    """Something the operator must fix; the message says what."""


def _works(python: str) -> bool:
    try:
        out = subprocess.run([python, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.startswith("Python 3.10")


def find_python310(settings: Settings) -> str:
    candidates = [settings.python310, shutil.which("python3.10")]
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.10.*/bin/python3.10"), reverse=True)
    for candidate in candidates:
        if candidate and _works(candidate):
            return candidate
    raise SetupError(
        "Rasa 3.6 needs Python 3.10 and none was found. Install it (for example `pyenv install 3.10.13` "
        "or `apt-get install python3.10 python3.10-venv`), or point CITYGW_PYTHON310 at a python3.10 binary."
    )


def _digest(paths: list[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for path in sorted(paths):
        h.update(str(path.relative_to(REPO_ROOT)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def rasa_env_dir(settings: Settings) -> Path:
    return settings.cache_dir / f"rasa-env-{_digest([REQUIREMENTS])}"


@contextlib.contextmanager
def _exclusive(settings: Settings, name: str) -> Iterator[None]:
    """One builder at a time across processes (two checkouts on one machine share the cache): the
    second waits, then finds the first one's result."""
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.cache_dir / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_rasa_env(settings: Settings) -> Path:
    """The venv with Rasa, built once per version of the pinned requirements."""
    venv = rasa_env_dir(settings)
    if (venv / ".complete").exists():
        return venv
    with _exclusive(settings, "rasa-env"):
        if (venv / ".complete").exists():
            return venv
        return _build_rasa_env(settings, venv)


def _build_rasa_env(settings: Settings, venv: Path) -> Path:
    python = find_python310(settings)
    log.info("building the Rasa environment in %s (about 2 minutes, once)", venv)
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    # Every version is pinned, so --no-deps skips the resolver (which otherwise backtracks for minutes).
    subprocess.run([*pip, "--no-deps", "-r", str(REQUIREMENTS)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "check"], check=True)
    (venv / ".complete").write_text(python)
    return venv


def model_inputs() -> list[Path]:
    files = {Path(p) for pattern in MODEL_INPUTS for p in glob.glob(str(REPO_ROOT / pattern), recursive=True)}
    return [p for p in files if p.is_file()]


def model_path(settings: Settings, config: str = "config.yml") -> Path:
    extra = [BOT / config] if config != "config.yml" else []
    return settings.cache_dir / "models" / f"{_digest(model_inputs() + extra)}.tar.gz"


def train(settings: Settings, force: bool = False, config: str = "config.yml") -> Path:
    """Train the model unless one for exactly these inputs exists. Fails on misaligned entities."""
    target = model_path(settings, config)
    if target.exists() and not force:
        return target
    venv = ensure_rasa_env(settings)
    with _exclusive(settings, "train"):
        if target.exists() and not force:
            return target
        return _train(settings, venv, target, config)


def _train(settings: Settings, venv: Path, target: Path, config: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as out:
        command = [
            str(venv / "bin" / "rasa"), "train", "--config", config, "--domain", "domain.yml",
            "--data", "data", "--out", out, "--fixed-model-name", "model",
        ]  # fmt: skip
        log.info("training the Rasa model: its inputs changed (a few minutes on 2 cores)")
        started = time.monotonic()
        # Sentence vectors are kept across trainings: a data edit embeds only the new examples.
        env = rasa_environ(CITYGW_E5_CACHE=str(settings.cache_dir / "e5-vectors.sqlite"))
        proc = subprocess.run(command, cwd=BOT, env=env, capture_output=True, text=True)
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            # Progress bars and library warnings bury Rasa's own message: drop them.
            noise = ("Processed ", "Warning", "warnings.warn", "  warn(")
            useful = [line for line in output.splitlines() if line.strip() and not any(n in line for n in noise)]
            raise SetupError("rasa train failed:\n" + "\n".join(useful[-40:]))
        if MISALIGNED in output:
            lines = [line for line in output.splitlines() if MISALIGNED in line]
            raise SetupError("training data has misaligned entity annotations:\n" + "\n".join(lines[:20]))
        shutil.move(str(Path(out) / "model.tar.gz"), target)
    log.info("model trained in %.0f s: %s", time.monotonic() - started, target.name)
    return target


def rasa_environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="2", SQLALCHEMY_SILENCE_UBER_WARNING="1")
    env.update(extra)
    return env


def start_rasa(settings: Settings, model: Path, port: int, action_port: int, log_file: Path) -> subprocess.Popen:
    venv = ensure_rasa_env(settings)
    command = [
        str(venv / "bin" / "rasa"), "run", "--enable-api", "-i", "127.0.0.1", "-p", str(port),
        "-m", str(model), "--endpoints", "endpoints.yml", "--credentials", "credentials.yml",
        "--logging-config-file", str(LOGGING),
    ]  # fmt: skip
    # Rasa's environment finds the log filter (`common`) in the repository; nothing else is loaded from there.
    env = rasa_environ(ACTION_ENDPOINT_URL=f"http://127.0.0.1:{action_port}/webhook", PYTHONPATH=str(REPO_ROOT))
    return _spawn(command, BOT, env, log_file)


def start_actions(
    port: int, log_file: Path, env: dict[str, str] | None = None, actions: str = "bot.actions"
) -> subprocess.Popen:
    command = [sys.executable, "-m", "gateway.action_server", "--actions", actions, "-p", str(port)]
    # rasa-sdk's CLI has no host flag and would listen on every interface; Sanic honours SANIC_HOST.
    return _spawn(command, REPO_ROOT, {**os.environ, **(env or {}), "SANIC_HOST": "127.0.0.1"}, log_file)


def _spawn(command: list[str], cwd: Path, env: dict[str, str], log_file: Path) -> subprocess.Popen:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None, log_file: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log_file.read_text(errors="replace")[-3000:] if log_file else ""
            program = proc.args if isinstance(proc.args, str | bytes | os.PathLike) else proc.args[0]
            raise SetupError(f"{os.fsdecode(program)} exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SetupError(f"{url} did not answer within {timeout_s:.0f} s")


def stop(proc: subprocess.Popen, timeout_s: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
