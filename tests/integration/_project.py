"""A throwaway project for driving the `drillbook` command line end to end.

`make_project` writes, into a fresh folder, a git repository with a local identity and:

- `service/app.py`: a stdlib-only HTTP service with `/health`, `/version` and `/feature`; it
  serves the version its deploy wrote to `var/<env>/version`, and `/feature` answers 500 for the
  versions listed in `FIXTURE_BROKEN`;
- `deploy.py`: stops the running service, writes the version file, starts the service detached
  (a session of its own, output to a log file, a pid file) and polls `/version` until it says the
  new version; `FIXTURE_FAIL_DEPLOY` lists versions whose deploy fails, `FIXTURE_HANG` makes the
  deploy of a version leave a grandchild that holds the output open and never ends;
- `gate.py`: the lint and unit gates; `FIXTURE_SLOW_GATE` makes one of them sleep,
  `FIXTURE_LEAK` makes one print secrets in several spellings;
- with `FIXTURE_RECORD` set to a file, the gates and the deploy append a line to it as they
  start and as they end well (`unit start RUN`, `deploy 1.1.0 end RUN`, see `Project.record`);
- `runbooks/shop.yaml`: releases 1.0.0, 1.1.0 and 1.2.0, a staging config with a secret.

The behaviour switches are environment variables, so the committed files, and thus the runbook's
hash that `resume` compares, stay the same from one run to the next.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
DRILLBOOK = BIN / "drillbook"
SECRET_KEY = "s3cr3t/p@ss+w0rd=Zq"
API_TOKEN = "tok_9f8e7d6c5b4a"

APP = '''\
"""A tiny staging service: the version its deploy wrote, and a switch to break /feature."""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PORT = int(sys.argv[1])
STATE = Path(sys.argv[2])
VERSION = (STATE / "version").read_text().strip()
BROKEN = set(filter(None, os.environ.get("FIXTURE_BROKEN", "").split(",")))


class Handler(BaseHTTPRequestHandler):
    def _reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            self._reply(200, {"status": "ok", "version": VERSION})
        elif self.path == "/version":
            self._reply(200, {"version": VERSION})
        elif self.path == "/feature":
            if VERSION in BROKEN:
                self._reply(500, {"error": "feature crashed"})
            else:
                self._reply(200, {"feature": "on"})
        else:
            self._reply(404, {"error": "not found"})

    def log_message(self, format, *args):
        print(format % args, file=sys.stderr, flush=True)


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
server.daemon_threads = True
print(f"serving {VERSION} on {PORT}", flush=True)
server.serve_forever()
'''

DEPLOY = '''\
"""Deploy a version of the service: stop the old one, write the version, start, wait ready."""

import argparse
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent


def listed(name, version):
    return version in os.environ.get(name, "").split(",")


def record(what):
    if os.environ.get("FIXTURE_RECORD"):
        with open(os.environ["FIXTURE_RECORD"], "a") as f:
            f.write(f"{what} {os.environ.get('DRILLBOOK_RUN')}\\n")


def alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def stop(pid_file):
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        until = time.monotonic() + wait
        while alive(pid) and time.monotonic() < until:
            time.sleep(0.01)
        if not alive(pid):
            break
    pid_file.unlink()


def answers(url, version):
    try:
        with urllib.request.urlopen(url + "/version", timeout=0.5) as response:
            return json.load(response).get("version") == version
    except (OSError, ValueError):
        return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--url", required=True)
    args = parser.parse_args()
    record(f"deploy {args.version} start")
    print(f"deploying {args.version} to {args.env}", flush=True)
    if listed("FIXTURE_FAIL_DEPLOY", args.version):
        print(f"deploy of {args.version} refused: the artifact is missing", flush=True)
        return 1
    if listed("FIXTURE_HANG", args.version):
        # A grandchild that inherits our stdout and never ends.
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        if os.environ.get("FIXTURE_HANG_MODE") == "exit":
            print("started a helper and left", flush=True)
            return 0
        time.sleep(3600)
    state = ROOT / "var" / args.env
    state.mkdir(parents=True, exist_ok=True)
    pid_file = state / "server.pid"
    stop(pid_file)
    (state / "version").write_text(args.version + "\\n")
    port = urlsplit(args.url).port
    with (state / "server.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "service" / "app.py"), str(port), str(state)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    until = time.monotonic() + 10
    while time.monotonic() < until:
        if answers(args.url, args.version):
            print(f"{args.env} runs {args.version}", flush=True)
            record(f"deploy {args.version} end")
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    print((state / "server.log").read_text()[-2000:], flush=True)
    return 1


sys.exit(main())
'''

GATE = '''\
"""The lint and unit gates: they pass, unless a switch says to sleep or to leak secrets."""

import os
import sys
import time
from urllib.parse import quote

name = sys.argv[1]


def record(what):
    if os.environ.get("FIXTURE_RECORD"):
        with open(os.environ["FIXTURE_RECORD"], "a") as f:
            f.write(f"{name} {what} {os.environ.get('DRILLBOOK_RUN')}\\n")


record("start")
if os.environ.get("FIXTURE_SLOW_GATE") == name:
    if os.environ.get("FIXTURE_IGNORE_TERM"):
        import signal

        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(f"{name}: sleeping", flush=True)
    time.sleep(60)
if os.environ.get("FIXTURE_LEAK") == name:
    secret = ""
    for line in open("config/staging.env"):
        if line.startswith("SECRET_KEY="):
            secret = line.split("=", 1)[1].strip()
    token = os.environ["API_TOKEN"]
    for label, value in (("config secret", secret), ("env token", token)):
        print(f"{label} as is: {value} (end)")
        print(f"{label} url-encoded: {quote(value, safe='')} (end)")
        print(f"{label} in a url: https://deploy:{quote(value, safe='')}@repo.example.com/x (end)")
        print(f"{label} header: Authorization: Bearer {value} (end)")
    sys.stdout.flush()
    if os.environ.get("FIXTURE_LEAK_FAIL"):
        print(f"giving up, the key {secret} was refused", flush=True)
        sys.exit(3)
if os.environ.get("FIXTURE_MOVE_HEAD") == name:
    # Someone commits in the same checkout while the release runs.
    import subprocess

    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "moved on"], check=True)
if os.environ.get("FIXTURE_ODD_OUTPUT") == name:
    # Line separators that JSON keeps raw, a byte that is not UTF-8, a carriage return.
    sys.stdout.buffer.write("a\\u2028b\\u2029c\\x85d".encode() + b" \\xff\\xfe\\r\\n")
    sys.stdout.flush()
if os.environ.get("FIXTURE_BIG_OUTPUT") == name:
    for i in range(40):
        print(f"{i:02d} " + "x" * 4000)
print(f"{name}: ok", flush=True)
record("end")
'''

RUNBOOK = """\
drillbook: 1
service: shop
owner: team-shop
escalation: "#shop-oncall"
description: A tiny shop used by drillbook's end-to-end tests.

environments:
  staging:
    url: {url}
    config: config/staging.env
  production:
    url: https://shop.example.com
    config: config/production.env

config:
  required: [LOG_LEVEL, SECRET_KEY]
  secrets: [SECRET_KEY]
  rules:
    LOG_LEVEL: {{one_of: [debug, info, warning, error]}}
  same_keys_as: production

gates:
  lint: [python, gate.py, lint]
  unit: [python, gate.py, unit]

deploy:
  run: [python, deploy.py, --env, "{{env}}", --version, "{{version}}", --url, "{{url}}"]
  timeout: {deploy_timeout}

logs:
  - name: server
    where: var/{{env}}/server.log
    format: text

checks:
  healthy:
    get: /health
    expect: {{status: 200, json: {{status: ok}}}}
    timeout: 1s
    retry: {{attempts: 3, interval: 100ms}}

releases:
  - version: 1.0.0
    changes:
      - id: catalogue
        title: List the products
        owner: alice
        expected:
          summary: /health answers ok and /version says 1.0.0.
          checks:
            - healthy
            - get: /version
              expect: {{json: {{version: 1.0.0}}}}
        rollback:
          summary: Nothing to go back to; stop the service.
          retry_safe: true
          checks: [healthy]
  - version: 1.1.0
    changes:
      - id: feature
        title: Turn the feature on
        owner: bob
        expected:
          summary: /feature answers 200.
          checks:
            - healthy
            - get: /feature
              expect: {{status: 200}}
              timeout: 1s
        rollback:
          summary: Deploy 1.0.0 again; the feature goes away.
          retry_safe: true
          checks:
            - healthy
            - get: /version
              expect: {{json: {{version: 1.0.0}}}}
{extra_releases}"""

SLOW_GPG = """\
#!/bin/sh
# A gpg that waits for its passphrase until FIXTURE_GPG_SLEEP seconds have gone, when it signs
# a tag; the commit a release's preflight signs to try the signer is signed at once.
payload=$(cat)
case "$payload" in
  "object "*)
    touch "$0.started"
    sleep "${FIXTURE_GPG_SLEEP:-30}"
    ;;
esac
echo "[GNUPG:] SIG_CREATED D 1 8 00 1700000000 0123456789ABCDEF" >&2
printf -- '-----BEGIN PGP SIGNATURE-----\\n\\nZmFrZQ==\\n-----END PGP SIGNATURE-----\\n'
"""

KILLER = '''\
"""drillbook, SIGKILLed with its whole process group right after it wrote a journal event.

FIXTURE_KILL_AFTER names the event: `EVENT`, `EVENT:STEP` or `EVENT:STEP:N` (the Nth such
event, counted from 1), matched against every journal line this process writes, whichever
journal it goes to. With FIXTURE_KILL_TORN=1 only the first half of that line is written: what
a crash in the middle of a write leaves. `tmp:NAME` instead kills it once it has made the
temporary file of a file written whole (its name starts with `.NAME.`), before the rename.
The kill is the real one, SIGKILL to the process group, as `kill -9 -PGID` or the OOM killer
would do; only its moment is chosen.
"""

import json
import os
import signal
import sys

from drillbook import journal

EVENT, _, REST = os.environ.pop("FIXTURE_KILL_AFTER").partition(":")
STEP, _, NTH = REST.partition(":")
TORN = os.environ.pop("FIXTURE_KILL_TORN", "") == "1"
seen = 0
write_bytes = journal.Journal._write_bytes


def matches(data):
    global seen
    event = json.loads(data)
    if event["event"] != EVENT or (STEP and event.get("step") != STEP):
        return False
    seen += 1
    return seen == int(NTH or 1)


def write_and_die(self, data, *, sync=True):
    if not matches(data):
        return write_bytes(self, data, sync=sync)
    if TORN:
        os.write(self._fd, data[: len(data) // 2])
    else:
        write_bytes(self, data, sync=sync)
    os.killpg(0, signal.SIGKILL)


def mkstemp_and_die(*args, **kwargs):
    made = mkstemp(*args, **kwargs)
    if os.path.basename(made[1]).startswith(f".{STEP}."):
        os.killpg(0, signal.SIGKILL)
    return made


if EVENT == "tmp":
    import tempfile

    mkstemp = tempfile.mkstemp
    tempfile.mkstemp = mkstemp_and_die
else:
    journal.Journal._write_bytes = write_and_die
sys.argv[0] = "drillbook"
from drillbook.__main__ import main  # noqa: E402

main()
'''

EXTRA_RELEASE = """\
  - version: 1.2.0
    changes:
      - id: basket
        title: A basket
        owner: carol
        expected:
          summary: /feature still answers 200.
          checks:
            - get: /feature
              expect: {status: 200}
              timeout: 1s
        rollback:
          summary: Deploy 1.1.0 again.
          retry_safe: true
          checks:
            - get: /version
              expect: {json: {version: 1.1.0}}
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hermetic_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment with no global git config and no identity outside the repository."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_", "FIXTURE_", "DRILLBOOK_"))
        and k not in ("EMAIL", "API_TOKEN", "SECRET_KEY")
    }
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


@dataclass
class Run:
    """A finished `drillbook` command."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str
    seconds: float

    @property
    def text(self) -> str:
        """stdout and stderr together."""
        return self.out + self.err

    def __str__(self) -> str:
        return f"drillbook {' '.join(self.args)} -> {self.code}\n{self.out}\n{self.err}"


@dataclass
class Project:
    """A fixture project: where it is, how to run drillbook in it, what it left behind."""

    root: Path
    home: Path
    port: int
    url: str
    env: dict[str, str]
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    # --- running -------------------------------------------------------------------------------

    def run(
        self,
        *args: str,
        timeout: float = 60,
        file_size_limit: int | None = None,
        umask: int = -1,
        **env: str,
    ) -> Run:
        """Run `drillbook ARGS` in the project and wait for it.

        `file_size_limit` caps the size of every file it writes (RLIMIT_FSIZE): a write past it
        fails with EFBIG, as on a full disk, even for root. `umask` is its umask (-1: ours).
        """

        def limit() -> None:
            if file_size_limit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

        started = time.monotonic()
        proc = subprocess.run(
            [str(DRILLBOOK), *args],
            cwd=self.root,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            preexec_fn=limit if file_size_limit is not None else None,
            umask=umask,
        )
        return Run(args, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)

    def run_killed(self, after: str, *args: str, torn: bool = False, **env: str) -> Run:
        """Run `drillbook ARGS` in a process group of its own and SIGKILL that group right
        after it journals the event `after` (`EVENT[:STEP[:N]]`, see `KILLER`); with `torn`,
        half-way through writing it. Fails when the run ended before that event."""
        killer = self.home / "killed_drillbook.py"
        if not killer.exists():
            killer.write_text(KILLER)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, str(killer), *args],
            cwd=self.root,
            env={
                **self.env,
                **env,
                "FIXTURE_KILL_AFTER": after,
                "FIXTURE_KILL_TORN": "1" if torn else "",
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            start_new_session=True,
        )
        run = Run(args, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
        assert run.code == -signal.SIGKILL, f"not killed after {after}: {run}"
        return run

    def record(self) -> list[str]:
        """What the gates and deploys recorded (FIXTURE_RECORD=`self.record_file`), a line each:
        `lint start RUN`, `deploy 1.1.0 end RUN`."""
        path = self.record_file
        return path.read_text().splitlines() if path.exists() else []

    @property
    def record_file(self) -> Path:
        """Where the gates and deploys record what ran, when FIXTURE_RECORD names it."""
        return self.home / "record.txt"

    def start(self, *args: str, new_session: bool = False, **env: str) -> subprocess.Popen[str]:
        """Start `drillbook ARGS` in the background (for signals and locks).

        `new_session`: in a process group of its own, as a terminal runs a command, so that
        `os.killpg(proc.pid, SIGINT)` is a Ctrl-C: it reaches drillbook and the programs it runs
        in its own group (git), not the commands it starts in groups of their own.
        """
        proc = subprocess.Popen(
            [str(DRILLBOOK), *args],
            cwd=self.root,
            env={**self.env, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=new_session,
        )
        self.started.append(proc)
        return proc

    def read_until(self, proc: subprocess.Popen[str], text: str, timeout: float = 20) -> str:
        """Read `proc`'s stdout until `text` appears; what was read (keep it: it is consumed)."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        seen = b""
        until = time.monotonic() + timeout
        while text.encode() not in seen:
            left = until - time.monotonic()
            if left <= 0:
                msg = f"{text!r} never came; read so far:\n{seen.decode()}"
                raise AssertionError(msg)
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    msg = f"drillbook ended before {text!r}:\n{seen.decode()}"
                    raise AssertionError(msg)
                seen += chunk
        return seen.decode()

    def sign_tags_slowly(self) -> None:
        """Make git sign every tag with a gpg that waits FIXTURE_GPG_SLEEP seconds (default
        30) for its passphrase, as a person's pinentry does."""
        gpg = self.home / "slow-gpg"
        gpg.write_text(SLOW_GPG)
        gpg.chmod(0o755)
        self.git("config", "tag.gpgSign", "true")
        self.git("config", "gpg.program", str(gpg))

    def wait_for_signing(self, proc: subprocess.Popen[str], timeout: float = 30) -> None:
        """Wait until the gpg of `sign_tags_slowly` runs for `proc`."""
        marker = self.home / "slow-gpg.started"
        until = time.monotonic() + timeout
        while not marker.exists():
            if proc.poll() is not None or time.monotonic() > until:
                out, err = proc.communicate()
                msg = f"the tag was never signed ({proc.returncode}):\n{out}\n{err}"
                raise AssertionError(msg)
            time.sleep(0.02)

    def git(self, *args: str) -> str:
        """Run git in the project; its stdout."""
        proc = subprocess.run(
            ["git", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return proc.stdout.strip()

    def commit(self, message: str = "change") -> str:
        """Commit everything; the new HEAD."""
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    # --- looking -------------------------------------------------------------------------------

    def served_version(self) -> str | None:
        """What the staging service says its version is, or None when it does not answer."""
        try:
            with urllib.request.urlopen(self.url + "/version", timeout=2) as response:
                return json.load(response).get("version")
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def journals(self) -> list[Path]:
        """Journal files, oldest first (by the `ts` of their first event: run ids of the same
        second do not sort by time)."""
        folder = self.root / ".drillbook" / "journal"
        paths = folder.glob("*.jsonl") if folder.is_dir() else []

        def started(path: Path) -> tuple[str, str]:
            with path.open() as handle:
                first = handle.readline()
            try:
                return json.loads(first)["ts"], path.name
            except (ValueError, KeyError):
                return "", path.name

        return sorted(paths, key=started)

    def events(self, run: str | None = None) -> list[dict[str, Any]]:
        """The events of a run (default: the newest), every line parsed strictly as JSON."""
        paths = self.journals()
        path = next(p for p in paths if p.stem == run) if run else paths[-1]
        return [json.loads(line) for line in path.read_text().splitlines()]

    def wait_for_event(
        self, predicate: Any, *, timeout: float = 20, proc: subprocess.Popen[str] | None = None
    ) -> dict[str, Any]:
        """Poll the newest journal until an event satisfies `predicate`."""
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if proc is not None and proc.poll() is not None:
                out, err = proc.communicate()
                msg = f"drillbook ended ({proc.returncode}) before the event:\n{out}\n{err}"
                raise AssertionError(msg)
            for path in reversed(self.journals()):
                for line in path.read_text().splitlines():
                    with contextlib.suppress(ValueError):
                        event = json.loads(line)
                        if predicate(event):
                            return event
            time.sleep(0.02)
        msg = "the event never came"
        raise AssertionError(msg)

    def tags(self) -> list[str]:
        """Tag names."""
        return [t for t in self.git("tag", "--list").splitlines() if t]

    def snapshot(self) -> dict[str, bytes]:
        """Every file outside .drillbook/ (but the service's own log) with its content."""
        out = {}
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root).as_posix()
            if rel.startswith(".drillbook") or rel.endswith(".log") or not path.is_file():
                continue
            if rel.startswith(".git/") and rel.split("/")[1] in ("index", "logs", "FETCH_HEAD"):
                continue
            out[rel] = path.read_bytes()
        return out

    # --- cleaning up ---------------------------------------------------------------------------

    def stop_server(self) -> None:
        """Stop every service this project's deploys started."""
        for pid_file in (self.root / "var").glob("*/server.pid"):
            with contextlib.suppress(ValueError, ProcessLookupError, OSError):
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            pid_file.unlink(missing_ok=True)

    def leftovers(self) -> list[str]:
        """Live processes whose working directory is inside the project."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cwd = (entry / "cwd").readlink()
                stat = (entry / "stat").read_text()
                argv = (entry / "cmdline").read_bytes()  # any process's: bytes, maybe not UTF-8
                cmdline = argv.replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if stat[stat.rfind(")") + 2] in "ZX":
                continue
            if cwd == self.root or self.root in cwd.parents:
                found.append(f"{entry.name}: {cmdline}")
        return found

    def strays(self) -> list[str]:
        """`leftovers` other than the service the last deploy started."""
        servers = set()
        for pid_file in (self.root / "var").glob("*/server.pid"):
            with contextlib.suppress(OSError, ValueError):
                servers.add(int(pid_file.read_text()))
        return [line for line in self.leftovers() if int(line.split(":", 1)[0]) not in servers]

    def kill_leftovers(self) -> None:
        """SIGKILL whatever `leftovers` finds (after a test failed)."""
        for line in self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)

    def close(self) -> list[str]:
        """Stop the service and any drillbook still running; what was left behind."""
        for proc in self.started:
            if proc.poll() is None:
                # TERM first: drillbook stops its command's group; KILL would orphan it.
                proc.terminate()
                try:
                    proc.communicate(timeout=8)
                except subprocess.TimeoutExpired:
                    proc.kill()
            proc.communicate()
        self.stop_server()
        until = time.monotonic() + 3
        while self.leftovers() and time.monotonic() < until:
            time.sleep(0.02)
        left = self.leftovers()
        self.kill_leftovers()
        return left


def make_project(
    base: Path,
    *,
    url: str | None = None,
    deploy_timeout: str = "20s",
    extra_releases: bool = True,
    git: bool = True,
) -> Project:
    """Write the fixture project into `base/shop` and commit it."""
    root = base / "shop"
    home = base / "home"
    for folder in (root / "service", root / "runbooks", root / "config", home):
        folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = url or f"http://127.0.0.1:{port}"
    files = {
        "service/app.py": APP,
        "deploy.py": DEPLOY,
        "gate.py": GATE,
        "runbooks/shop.yaml": RUNBOOK.format(
            url=url,
            deploy_timeout=deploy_timeout,
            extra_releases=EXTRA_RELEASE if extra_releases else "",
        ),
        "config/staging.env": f"LOG_LEVEL=info\nSECRET_KEY={SECRET_KEY}\n",
        "config/production.env": "LOG_LEVEL=warning\nSECRET_KEY=prod-key-not-here\n",
        ".gitignore": "var/\n",
    }
    for rel, text in files.items():
        (root / rel).write_text(textwrap.dedent(text) if rel.endswith(".py") else text)
    env = hermetic_env(home, API_TOKEN=API_TOKEN)
    project = Project(root, home, port, url, env)
    if git:
        project.git("init", "-q", "-b", "main")
        project.git("config", "user.name", "Release Bot")
        project.git("config", "user.email", "release@example.com")
        project.commit("the shop")
    return project
