"""Every shell command README.md shows, run verbatim in a fresh copy of the checkout with a fresh
clone's defaults (no DEBUG, no SECRET_KEY, no DATABASE_URL, no REDIS_URL): issue 12, item 11.

The commands are read from README's ```sh blocks (and its inline `.venv/bin/python manage.py …`
spans), so a command added to README without a way to run it here fails
`test_every_readme_command_is_covered`.
They run in README's spirit, one after the other in the same copy: `make run` serves on a free
port while the CLI commands, the API token and the CI script use it; the Deploying block runs
against the services CI provides (its placeholder exports are followed by the real ones, and
daphne gets a free port on 127.0.0.1). Nothing is run that cannot end quickly: `make test` (this
suite) is dry-run and the 6-minute benchmark only parses its options.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from tests.servers import ROOT, free_port, session_database_url

README = ROOT / "README.md"
SETTINGS_VARS = ("DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE",
                 "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "HOST", "PORT")  # fmt: skip


def readme_commands() -> list[str]:
    text = README.read_text()
    lines = [line.strip() for block in re.findall(r"```sh\n(.*?)```", text, re.S) for line in block.splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    return commands + re.findall(r"`(\.venv/bin/python manage\.py [^`]*)`", text)


def command(prefix: str) -> str:
    """The one README command that starts with this (so a changed command is run as it now reads)."""
    found = [c for c in readme_commands() if c == prefix] or [c for c in readme_commands() if c.startswith(prefix)]
    assert len(found) == 1, f"README shows {len(found)} commands starting with {prefix!r}: {found}"
    RAN.add(found[0])
    return found[0]


RAN: set[str] = set()
HEART_OF_IT = ("auth=", "curl ")  # ids 7 and 12 stand for what the previous answer returned: syntax-checked


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """The checkout as a fresh clone has it (no database, no key file), with this venv linked."""
    dest = tmp_path_factory.mktemp("readme") / "promptlooper"
    ignore = shutil.ignore_patterns(".git", ".venv", "*.sqlite3", "*.sqlite3-*", ".secret_key", "staticfiles",
                                    "test-output", "__pycache__", ".pytest_cache")  # fmt: skip
    shutil.copytree(ROOT, dest, ignore=ignore)
    venv = (ROOT / ".venv").resolve()
    (dest / ".venv").symlink_to(venv)
    # The linked venv was installed from this requirements.txt: `make` must not reinstall it.
    installed = (venv / ".installed").stat().st_mtime
    os.utime(dest / "requirements.txt", (installed - 1, installed - 1))
    return dest


def fresh_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARS and not k.startswith("PROMPTLOOPER_")}
    return env | extra


def sh(clone: Path, line: str, *, stdin: str | None = None, timeout: float = 180, **env: str):
    began = time.monotonic()
    result = subprocess.run(["bash", "-c", line], cwd=clone, env=fresh_env(**env), input=stdin, capture_output=True,
                            text=True, timeout=timeout, start_new_session=True)  # fmt: skip
    print(f"{time.monotonic() - began:5.1f}s {line[:70]}")
    # No traceback ever reaches the user, whatever the exit status.
    assert "Traceback" not in result.stderr + result.stdout, f"{line}\n{result.stdout}\n{result.stderr}"
    return result


def ok(result) -> str:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def start(clone: Path, line: str, log: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(["bash", "-c", line], cwd=clone, env=fresh_env(**env), stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def stop(process: subprocess.Popen) -> None:
    """Ends the process group we started (make and its children), by its id."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer to look at (an HTTPError), never a request elsewhere than 127.0.0.1."""

    def redirect_request(self, *args, **kwargs):
        return None


LOCAL_ONLY = urllib.request.build_opener(NoRedirects)


def wait_http(url: str, process: subprocess.Popen, log: Path, headers: dict | None = None, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}:\n{log.read_text()}"
        try:
            with LOCAL_ONLY.open(urllib.request.Request(url, headers=headers or {}), timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as e:
            assert not 300 <= e.code < 400, f"{url} redirected to {e.headers.get('Location')}"
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s:\n{log.read_text()}")


def wait_until(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


SLOW_SPEC = {
    "name": "Paused from the CLI", "max_concurrency": 1,
    "pipeline": [{"name": "echo", "prompt": "Row: {{ i }}", "model": "mock/echo"}],
    "dataset": [{"i": i} for i in range(100)], "scorers": [{"type": "contains", "value": "1"}],
}  # fmt: skip


def api(base: str, token: str, path: str, method: str = "GET", body: dict | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}/api/v1{path}", data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def sign_in(base: str, username: str, password: str) -> bool:
    """The real login page over HTTP, CSRF cookie and all: True when it lets us in."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar := CookieJar()))
    opener.open(f"{base}/login/", timeout=10).read()
    csrf = next(c.value for c in jar if c.name == "csrftoken")
    form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": csrf})
    post = urllib.request.Request(f"{base}/login/", data=form.encode(), headers={"Referer": base})
    page = opener.open(post, timeout=10)
    return page.url.rstrip("/") == base and any(c.name == "sessionid" for c in jar)


def test_a_fresh_clone_runs_the_quick_start_the_cli_and_the_ci_example(clone, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "make-run.log"
    server = start(clone, command("make run"), log, HOST="127.0.0.1", PORT=str(port))
    try:
        wait_http(f"{base}/login/", server, log)
        password = re.search(r"Log in as demo / (\S+)", log.read_text()).group(1)

        ok(sh(clone, "make -n test"))  # `make test` is this suite: only its recipe is checked
        RAN.add(command("make test"))

        waited = ok(sh(clone, command(".venv/bin/python manage.py sweep examples/ticket-triage.yaml --wait")))
        assert "completed" in waited
        gate = sh(clone, command(".venv/bin/python manage.py sweep examples/ticket-triage.yaml --min-score"))
        assert gate.returncode in (0, 1) and ("below --min-score" in gate.stderr) == (gate.returncode == 1)

        token = re.search(r"pl_\S+", ok(sh(clone, command(".venv/bin/python manage.py create_api_token")))).group(0)
        # Sweep 3, started from the API on the server: new prompts (no cache hits), one call at a
        # time at the mock's 150 ms, so `--pause 3` finds it running.
        experiment = api(base, token, "/experiments", "POST", SLOW_SPEC)["id"]
        assert api(base, token, f"/experiments/{experiment}/sweeps", "POST")["id"] == 3
        wait_until(lambda: api(base, token, "/sweeps/3")["status"] == "running")
        assert "Sweep 3: paused" in ok(sh(clone, command(".venv/bin/python manage.py sweep --pause 3")))
        wait_until(lambda: api(base, token, "/sweeps/3")["status"] == "paused")
        # After sweep 3 (README pauses that id): the CI gate on failed samples.
        ok(sh(clone, command(".venv/bin/python manage.py sweep examples/ticket-triage.yaml --wait --max-failed")))
        junit = sh(clone, command(".venv/bin/python manage.py sweep examples/ticket-triage.yaml --experiment"))
        assert junit.returncode in (0, 1) and "<testsuites" in (clone / "report.xml").read_text()

        # The CI example: its export line is a placeholder for this server and this token.
        command("export PROMPTLOOPER_URL=")
        ci = sh(clone, command("examples/ci.sh"), PROMPTLOOPER_URL=base, PROMPTLOOPER_TOKEN=token, POLL_SECONDS="0.2")
        assert ci.returncode in (0, 1) and "best score" in ci.stdout, ci.stdout + ci.stderr
        assert ci.returncode == 1 or (clone / "results.csv").exists()

        # Coming from promptfoo: the example suite, imported, then imported and run offline.
        suite = ".venv/bin/python manage.py import_promptfoo examples/promptfoo/promptfooconfig.yaml"
        imported = ok(sh(clone, command(suite + "  ")))  # the line without --run
        assert "3 prompts x 1 providers, 10 tests, 4 scorers." in imported and "Not imported (5):" in imported
        ran = ok(sh(clone, command(suite + " --run")))
        assert "Leaderboard · sweep" in ran and "completed" in ran
        for line in readme_commands():
            if line.startswith(HEART_OF_IT):
                ok(sh(clone, f"bash -n <<'EOF'\n{line}\nEOF"))
                RAN.add(line)

        new = "a-new-Demo-pass-81"
        ok(sh(clone, command(".venv/bin/python manage.py changepassword demo"), stdin=f"{new}\n{new}\n"))
        assert sign_in(base, "demo", new) and not sign_in(base, "demo", password)

        bench = command(".venv/bin/python bench/search_efficiency.py")  # 6.5 minutes: its options only
        assert "--quick" in ok(sh(clone, f"{bench} --help"))
    finally:
        stop(server)
    # Every command above ran without DEBUG or SECRET_KEY and shared the key `make run` generated.
    assert (clone / ".secret_key").exists()


@pytest.mark.django_db(transaction=True)
def test_the_deploying_commands_run_against_the_services_ci_provides(clone, tmp_path):
    exports = [command(f"export {name}=") for name in ("DATABASE_URL", "SECRET_KEY", "SECURE_PROXY_SSL_HEADER")]
    services = (f"export DATABASE_URL={session_database_url()} "
                f"REDIS_URL={os.environ.get('TEST_RQ_REDIS_URL', 'redis://127.0.0.1:6379/14')} "
                f"SECRET_KEY={secrets.token_urlsafe(50)}")  # fmt: skip
    prologue = "\n".join([*exports, services, 'export PATH="$PWD/.venv/bin:$PATH"']) + "\n"

    ok(sh(clone, prologue + command("python manage.py migrate --noinput && python manage.py collectstatic")))
    ok(sh(clone, prologue + command("python manage.py check --deploy")))

    port = free_port()
    daphne = command("daphne -b 0.0.0.0 -p 8000").replace("-b 0.0.0.0 -p 8000", f"-b 127.0.0.1 -p {port}")
    log = tmp_path / "daphne.log"
    server = start(clone, prologue + daphne, log)
    try:
        # As the HTTPS proxy in front forwards it; plain http is sent to https.
        proxied = {"Host": "promptlooper.example.com", "X-Forwarded-Proto": "https"}
        wait_http(f"http://127.0.0.1:{port}/login/", server, log, headers=proxied)
        plain_http = urllib.request.Request(f"http://127.0.0.1:{port}/login/", headers={"Host": proxied["Host"]})
        with pytest.raises(urllib.error.HTTPError) as plain:
            LOCAL_ONLY.open(plain_http, timeout=10)
        assert (plain.value.code, plain.value.headers["Location"]) == (301, "https://promptlooper.example.com/login/")
    finally:
        stop(server)

    log = tmp_path / "rqworker.log"
    worker = start(clone, prologue + command("python manage.py rqworker sweeps"), log)
    try:
        wait_until(lambda: "Listening on" in log.read_text() or worker.poll() is not None)
        assert worker.poll() is None, log.read_text()
    finally:
        stop(worker)


def test_every_readme_command_is_covered():
    """Runs last (pytest keeps file order): a README command neither test ran fails here."""
    if not RAN:
        pytest.skip("the tests above did not run")
    assert set(readme_commands()) <= RAN
