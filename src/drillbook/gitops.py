"""git probes, annotated release tags, and pushing one tag.

Every call runs the `git` program with an argument list, `LC_ALL=C` so its messages can be read,
and `GIT_TERMINAL_PROMPT=0` so it never waits for a password. Variables that would point git at
another repository (`GIT_DIR`, `GIT_WORK_TREE`, ...) are dropped: the `root` argument decides.

Text goes to git and comes back as UTF-8, whatever the locale: git records messages in UTF-8,
and names are bytes, so a tag or a file named in Latin-1 reads with U+FFFD in place of the
byte rather than stopping every release.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from drillbook.errors import PreconditionFailed, TagsMissing, UsageError
from drillbook.versions import highest_below, is_semver, tag_name_problem

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence

    from drillbook.process import StopToken

#: Seconds a local git command may take before drillbook gives up on it.
LOCAL_TIMEOUT = 30.0
DEFAULT_IGNORE = (".drillbook/",)
MAX_LISTED = 20
_TAIL_LINES = 20
_TAIL_CHARS = 2000
# Set by a hook or a wrapper, these would make git ignore the `root` drillbook passes.
_REPO_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
# user.useConfigOnly: a tag by "root@host" guessed from the machine is worse than no tag.
_STRICT_IDENTITY = ("-c", "user.useConfigOnly=true")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")
_FULL_HASH = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# git 2.36 on, and the security releases before it (2.30.3 to 2.35.2, still shipped by
# distributions), which said it otherwise.
_DUBIOUS = re.compile(
    r"dubious ownership in repository at '(.+)'|unsafe repository \('(.+)' is owned by someone"
)
_IDENT = re.compile(r"(.*?) <(.*)> \d+ [+-]\d{4}$")
# One line per tag: its name, what it points at, and (annotated tags) what that points at.
_TAG_FORMAT = "%(refname:strip=2)%00%(objecttype)%00%(objectname)%00%(*objecttype)%00%(*objectname)"
# What the paths say of an operation left half-done in this worktree, in the order asked.
_UNDER_WAY = (
    ("rebase-merge", "rebase"),
    ("rebase-apply", "rebase"),  # `git am` too
    ("BISECT_LOG", "bisect"),
)
_TOP_AND_HEAD = (
    "rev-parse",
    "--show-toplevel",
    "--is-shallow-repository",
    *(arg for path, _ in _UNDER_WAY for arg in ("--git-path", path)),
    "--verify",
    "--quiet",
    "HEAD^{commit}",
)
_STATUS = ("status", "--porcelain=v1", "-z", "--untracked-files=all")
# `## main...origin/main [ahead 1, behind 2]`: the first entry of `git status --branch`. A
# ref name holds no `..` and no space, so both split it safely; a detached HEAD, a branch
# without upstream and one with no commit yet say no `...`.
_BRANCH_HEADER = re.compile(
    r"## (?P<branch>\S+?)\.\.\.(?P<upstream>\S+)(?: \[(?P<track>[^\]]*)\])?"
)
_TRACK = re.compile(r"\b(ahead|behind) (\d+)")
# The setting that makes `git tag --annotate` sign.
_SIGNING = ("config", "--type=bool", "--get", "tag.gpgSign")
# A probe must not take the index lock from a user's git running at the same time.
_STATUS_ENV = {"GIT_OPTIONAL_LOCKS": "0"}


@dataclass(frozen=True)
class PushResult:
    """How pushing one tag went; a failed push is a result, not an error."""

    tag: str
    remote: str
    outcome: Literal["ok", "failed", "interrupted"]
    #: One line: what happened ("pushed", "git push exited 128", "no answer within 60s").
    detail: str
    #: The tail of git's output, credentials in URLs masked.
    output_tail: str = ""
    #: The remote had the tag on the same commit already (as another tag object): nothing
    #: was pushed, and nothing needs to be.
    already: bool = False

    @property
    def ok(self) -> bool:
        """Whether the remote now has the tag."""
        return self.outcome == "ok"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_VARS}
    env.update({"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"})
    if extra:
        env.update(extra)
    return env


def _git(
    root: Path,
    *args: str,
    stdin: str | None = None,
    timeout: float = LOCAL_TIMEOUT,
    env: dict[str, str] | None = None,
    errors: str = "replace",
) -> subprocess.CompletedProcess[str]:
    """Run `git -C root ARGS`; only a missing git or a hung one raises.

    `errors="surrogateescape"` keeps the bytes of names that are not UTF-8, as Python's own
    file names do (`os.fsdecode`).
    """
    argv = ["git", "-C", str(root), *args]
    try:
        return subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            encoding="utf-8",
            errors=errors,
            timeout=timeout,
            env=_env(env),
            check=False,
            # Without input, git must not read the terminal either.
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        msg = "git is not installed: expected the `git` program on PATH, found none"
        raise PreconditionFailed(msg, hint="install git, then run again") from None
    except subprocess.TimeoutExpired:
        msg = f"`git {' '.join(args)}` in {root} did not finish within {timeout:g}s"
        raise PreconditionFailed(msg, hint="check for a stale lock file in .git/") from None


def _git_all(
    root: Path,
    calls: Mapping[str, tuple[Sequence[str], dict[str, str] | None]],
    *,
    timeout: float = LOCAL_TIMEOUT,
    raw: Collection[str] = (),
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run several read-only `git -C root ARGS` at once; their results by name.

    They are independent reads, so they run side by side: one look at a repository costs
    about one git start instead of four. The output of those named in `raw` is decoded with
    `surrogateescape` (see `_git`).
    """
    started: dict[str, tuple[Sequence[str], subprocess.Popen[str]]] = {}
    try:
        for name, (args, env) in calls.items():
            try:
                proc = subprocess.Popen(
                    ["git", "-C", str(root), *args],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    encoding="utf-8",
                    errors="surrogateescape" if name in raw else "replace",
                    env=_env(env),
                )
            except FileNotFoundError:
                msg = "git is not installed: expected the `git` program on PATH, found none"
                raise PreconditionFailed(msg, hint="install git, then run again") from None
            started[name] = (args, proc)
        deadline = time.monotonic() + timeout
        done: dict[str, subprocess.CompletedProcess[str]] = {}
        for name, (args, proc) in started.items():
            try:
                out, err = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                msg = f"`git {' '.join(args)}` in {root} did not finish within {timeout:g}s"
                raise PreconditionFailed(msg, hint="check for a stale lock file in .git/") from None
            done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        return done
    finally:
        for _, proc in started.values():
            if proc.returncode is None:
                proc.kill()
                proc.communicate()


def _check_repo(root: Path, proc: subprocess.CompletedProcess[str]) -> None:
    """Raise when git refused to work in `root` at all (no repository, unsafe owner)."""
    err = proc.stderr
    if "not a git repository" in err or "cannot change to" in err:
        msg = f"not a git repository: {root}"
        hint = "run `git init` there and commit, or run drillbook from inside the repository"
        hidden = _hidden_by_ceiling(root)
        if hidden is not None:
            # `git init` here would make a repository inside the one git was kept from seeing.
            repository, ceiling = hidden
            msg += (
                f"; GIT_CEILING_DIRECTORIES holds {ceiling}, so git looks for a repository only "
                f"below it, and the one above the project is at {repository}"
            )
            hint = (
                f"if the project belongs to the repository at {repository}, take {ceiling} "
                f"out of GIT_CEILING_DIRECTORIES; if not, run `git init` in {root} and commit"
            )
        raise PreconditionFailed(msg, hint=hint)
    named = _DUBIOUS.search(err)
    if named:
        # git names the folder it judged: the repository's top, which is not `root` when the
        # project is a folder of it, and only that one is accepted in safe.directory.
        where = named.group(1) or named.group(2)
        owner = f"the repository at {where}" if where != str(root) else "it"
        msg = f"git refuses to work in {root}: {owner} is owned by another user"
        hint = f"git config --global --add safe.directory {shlex.quote(where)}"
        raise PreconditionFailed(msg, hint=hint)


def _hidden_by_ceiling(root: Path) -> tuple[Path, str] | None:
    """The repository above `root` that GIT_CEILING_DIRECTORIES keeps git from finding, and
    the ceiling that does, or None."""
    ceilings = [c for c in os.environ.get("GIT_CEILING_DIRECTORIES", "").split(":") if c]
    folder = root.absolute()
    nearest = next((above for above in folder.parents if (above / ".git").exists()), None)
    if not ceilings or nearest is None:
        return None
    for ceiling in ceilings:
        stop = Path(ceiling)  # git takes only absolute paths; a relative one never matches
        # git searches only the folders below a ceiling: not the ceiling, nor what is above.
        if folder != stop and folder.is_relative_to(stop) and stop.is_relative_to(nearest):
            return nearest, ceiling
    return None


def _tail(text: str) -> str:
    text = _URL_USERINFO.sub(r"\1***@", text.strip())
    return "\n".join(text.splitlines()[-_TAIL_LINES:])[-_TAIL_CHARS:]


def _exit_words(code: int) -> str:
    """How git ended when it said nothing: `git exited 128`, `git was killed by SIGINT`."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"git was killed by {name}, without a message"
    return f"git exited {code} without a message"


def repo_root(path: Path) -> Path:
    """The top folder of the git repository that holds `path`."""
    proc = _git(path, "rev-parse", "--show-toplevel", errors="surrogateescape")
    _check_repo(path, proc)
    if proc.returncode != 0:
        raise _not_a_repository(path, proc)
    return Path(proc.stdout.strip())


def _not_a_repository(path: Path, proc: subprocess.CompletedProcess[str]) -> PreconditionFailed:
    """git ran and failed for another reason than "not a git repository" (`_check_repo` says
    that one): a broken git, a corrupt repository. `git init` would not help."""
    return _git_failed(path, proc, "read the repository")


def _git_failed(
    root: Path, proc: subprocess.CompletedProcess[str], what: str
) -> PreconditionFailed:
    """The refusal of a read that git could not do: what git said, and how to see it again."""
    why = _tail(proc.stderr) or _exit_words(proc.returncode)
    msg = f"git could not {what} in {root}: {why}"
    hint = f"run `git -C {root} status` to see what git says, fix that, then run again"
    return PreconditionFailed(msg, hint=hint)


def _commit_of(root: Path, rev: str) -> str | None:
    if rev.startswith("-"):
        return None  # would read as an option (--end-of-options is too new to rely on)
    proc = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    _check_repo(root, proc)
    return proc.stdout.strip() if proc.returncode == 0 else None


def head_commit(root: Path) -> str | None:
    """The full hash of HEAD, or None when the repository has no commits yet."""
    return _commit_of(root, "HEAD")


@dataclass(frozen=True)
class RepoState:
    """One look at a repository: what a release must know before it changes anything."""

    #: The repository's top folder.
    top: Path
    #: The full hash of HEAD; None before the first commit.
    head: str | None
    #: Staged, modified and untracked files, relative to `top` (a byte that is not UTF-8 kept
    #: as `os.fsdecode` keeps it).
    changed: tuple[str, ...]
    #: The tagger git would record, or None when git has no identity.
    identity: tuple[str, str] | None
    #: Every tag and the commit it points at (annotated tags peeled).
    tags: Mapping[str, str] = field(default_factory=dict)
    #: Whether git signs the release tag (`tag.gpgSign`; `tag.forceSignAnnotated` does not
    #: apply to a tag made with `--annotate`).
    signs_tags: bool = False
    #: Whether the repository is a shallow clone (`git clone --depth`), whose tags may stop
    #: at its depth.
    shallow: bool = False
    #: The git operation under way in this worktree ("rebase", "bisect"), or None: HEAD is
    #: then a commit on the way, not one to release.
    under_way: str | None = None
    #: The branch checked out and its upstream as `git status --branch` names them
    #: ("main", "origin/main"); None when HEAD is detached or the branch has no upstream.
    branch: str | None = None
    upstream: str | None = None
    #: Commits the upstream, as last fetched, has and HEAD lacks; and the other way round.
    behind: int = 0
    ahead: int = 0

    def dirty_files(self, *, ignore: Sequence[str] = DEFAULT_IGNORE) -> list[str]:
        """The changed files, those under an `ignore` prefix left out."""
        return [path for path in self.changed if not _ignored(path, ignore)]

    def tag_commit(self, tag: str) -> str | None:
        """The commit a tag points at, or None when there is no such tag."""
        return self.tags.get(tag)

    def previous_version(self, version: str, tag_format: str = "v{version}") -> str | None:
        """The highest version below `version` that has a tag (see `previous_version`)."""
        found = _previous(sorted(self.tags), version, tag_format)
        if found is None:
            _require_tags_fetched(self.top, version, tag_format, shallow=self.shallow)
        return found


def look(root: Path) -> RepoState:
    """Look at the repository that holds `root`: HEAD, changed files, identity and tags.

    Raises `PreconditionFailed` when `root` is not in a git repository, or git is missing.
    """
    found = _git_all(
        root,
        {
            "head": (_TOP_AND_HEAD, None),
            "status": ((*_STATUS, "--branch"), _STATUS_ENV),
            "identity": ((*_STRICT_IDENTITY, "var", "GIT_COMMITTER_IDENT"), None),
            "tags": (("for-each-ref", f"--format={_TAG_FORMAT}", "refs/tags"), None),
            "signing": (_SIGNING, None),
        },
        # Paths, as Python's own are: the top folder is compared with the project's.
        raw=("status", "head"),
    )
    head_proc = found["head"]
    _check_repo(root, head_proc)
    lines = head_proc.stdout.splitlines()
    if not lines:  # rev-parse prints the top folder even when there is no commit yet
        raise _not_a_repository(root, head_proc)
    paths = lines[2 : 2 + len(_UNDER_WAY)]
    after = 2 + len(_UNDER_WAY)
    head = lines[after] if head_proc.returncode == 0 and len(lines) > after else None
    under_way = next(
        (
            what
            for (_, what), path in zip(_UNDER_WAY, paths, strict=False)
            if (root / path).exists()
        ),
        None,
    )
    changed, tracking = _changed_and_tracking(root, found["status"])
    return RepoState(
        top=Path(lines[0]),
        head=head,
        shallow=len(lines) > 1 and lines[1] == "true",
        under_way=under_way,
        changed=tuple(changed),
        identity=_identity_of(found["identity"]),
        tags=_tags_of(root, found["tags"]),
        signs_tags=_signs_tags(found["signing"]),
        **tracking,
    )


def _changed_and_tracking(
    root: Path, proc: subprocess.CompletedProcess[str]
) -> tuple[list[str], dict[str, Any]]:
    """The paths of `git status --porcelain=v1 -z --branch`, and what its first entry says
    of the branch: `RepoState`'s branch, upstream, behind and ahead."""
    _check_repo(root, proc)
    header, _, rest = proc.stdout.partition("\0")
    tracking: dict[str, Any] = {}
    found = _BRANCH_HEADER.fullmatch(header) if proc.returncode == 0 else None
    if found is not None:
        tracking = {"branch": found["branch"], "upstream": found["upstream"]}
        for word, count in _TRACK.findall(found["track"] or ""):
            tracking[word] = int(count)
    return _changed_files(root, proc, rest), tracking


def _changed_files(
    root: Path, proc: subprocess.CompletedProcess[str], text: str | None = None
) -> list[str]:
    """The paths of `git status --porcelain=v1 -z` (`text`: its output, its header cut off)."""
    _check_repo(root, proc)
    if proc.returncode != 0:
        msg = f"`git status` failed in {root}: {_tail(proc.stderr)}"
        raise PreconditionFailed(msg)
    entries = (proc.stdout if text is None else text).split("\0")
    files: list[str] = []
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        if "R" in status or "C" in status:
            i += 1  # a rename or copy is followed by its source path
        files.append(path)
    return files


def _signs_tags(proc: subprocess.CompletedProcess[str]) -> bool:
    """Whether `git config --type=bool --get tag.gpgSign` said true."""
    return proc.returncode == 0 and proc.stdout.strip() == "true"


def require_settled(state: RepoState) -> None:
    """Raise `PreconditionFailed` when a rebase or a bisect is under way in the worktree.

    Its HEAD is clean and detached, as a CI checkout's is, but it is a commit on the way: a
    rebase may still rewrite it, and a bisect picked it to test. A tag on it would mark code
    that no branch holds, or that nobody meant to release.
    """
    head = state.head[:9] if state.head else "HEAD"
    if state.under_way == "rebase":
        msg = (
            f"a git rebase is under way in {state.top}: HEAD {head} is a commit the rebase may "
            "still rewrite, so a release tag on it could mark code no branch holds"
        )
        hint = "finish it (git rebase --continue) or stop it (git rebase --abort), then run again"
        raise PreconditionFailed(msg, hint=hint)
    if state.under_way == "bisect":
        msg = (
            f"a git bisect is under way in {state.top}: HEAD {head} is the commit it picked to "
            "test, not the code to release"
        )
        raise PreconditionFailed(msg, hint="end it with git bisect reset, then run again")


def require_current(state: RepoState) -> None:
    """Raise `PreconditionFailed` when the branch checked out is behind its upstream.

    The upstream is judged as last fetched: a release asks no remote. A checkout left behind
    (the fix a colleague merged an hour ago is on origin/main, not here) would tag and deploy
    code without it, and on a bad day undo a fix rather than ship one. A detached HEAD, as CI
    checks out, has no upstream and is taken as chosen.
    """
    if state.behind <= 0 or state.upstream is None:
        return
    commits = "commit" if state.behind == 1 else "commits"
    head = state.head[:9] if state.head else "HEAD"
    msg = (
        f"branch {state.branch} (HEAD {head}) is {state.behind} {commits} behind "
        f"{state.upstream}, as last fetched: a release from here would tag and deploy code "
        f"without {'it' if state.behind == 1 else 'them'}"
    )
    if state.ahead:
        msg += f"; it also has {state.ahead} commit(s) that {state.upstream} has not"
    hint = (
        f"bring the branch up to date (git pull, or git merge --ff-only {state.upstream} "
        "when it has no commits of its own), then run again; to release this commit as it "
        "is, check it out detached (git checkout --detach) and run again"
    )
    raise PreconditionFailed(msg, hint=hint)


def require_taggable(root: Path, tag: str, *, commit: str = "HEAD") -> None:
    """Raise `PreconditionFailed` unless git would let the tag `tag` be made on `commit`.

    A reference-transaction hook (in `.git/hooks` or `core.hooksPath`) can refuse any new
    ref, and a `.lock` file left by a git that was killed refuses that one ref: either would
    be found at the tag, after the deploy and its checks, and cost a rollback. git is asked
    to prepare the very ref update, which runs the hook and takes the lock, and then to
    abort it: no ref changes.
    """
    check_tag_name(tag)
    ref = f"refs/tags/{tag}"
    proc = _git(
        root, "update-ref", "--stdin", stdin=f"start\ncreate {ref} {commit}\nprepare\nabort\n"
    )
    if proc.returncode == 0 or "unknown command: start" in proc.stderr:
        # A git older than 2.27 has no transactions to prepare: the tag itself is the test.
        return
    _check_repo(root, proc)
    said = _tail(proc.stderr).splitlines()
    why = _first_error("\n".join(said)) or _exit_words(proc.returncode)
    # What a hook printed comes before git's own line; git's advice after it says no more.
    before = (
        [line.strip() for line in said[: said.index(why)] if line.strip()] if why in said else []
    )
    msg = (
        f"git would refuse the tag {tag} on {commit[:9]}: {why}; the release would deploy, "
        "then fail at its tag and roll back" + "".join(f"\n  {line}" for line in before)
    )
    if "hook" in proc.stderr:
        hook = _git(root, "rev-parse", "--git-path", "hooks/reference-transaction")
        where = (root / hook.stdout.strip()) if hook.returncode == 0 else "the hooks folder"
        hint = (
            f"its reference-transaction hook ({where}) refuses the tag: fix the hook, or "
            "the core.hooksPath that points at it, then run again"
        )
    elif "Permission denied" in proc.stderr:
        # Before the lock: git names the .lock file it could not create, and there is none
        # to delete (a checkout of another user's, or a .git/ made read-only).
        hint = (
            "this user cannot write the repository's tags: make .git/ writable for it, or "
            "release as the user who owns the repository, then run again"
        )
    elif ".lock" in proc.stderr:
        hint = "if no git is running in this repository, delete the .lock file it names"
    else:
        hint = "fix what git says, then run again"
    raise PreconditionFailed(msg, hint=hint)


def require_signing(root: Path, *, commit: str = "HEAD") -> None:
    """Raise `PreconditionFailed` unless git can sign as the release tag will be signed.

    With `tag.gpgSign` (see `RepoState.signs_tags`) `git tag --annotate` signs; a signer that
    fails (no key, no agent, a passphrase nobody can type) would otherwise be found at the
    tag, after the deploy and its checks, and cost a rollback. git signs a commit object with
    the same program, format and key as a tag, and `commit-tree` writes one that no ref
    points at (git's gc removes it): no ref, tag or branch of the project changes.
    """
    proc = _git(
        root,
        *_STRICT_IDENTITY,
        "commit-tree",
        "-S",
        "-m",
        "drillbook: can git sign?",
        f"{commit}^{{tree}}",
        timeout=60.0,  # as the tag's own signing: a person may be typing a passphrase
    )
    if proc.returncode == 0:
        return
    _check_repo(root, proc)
    why = _tail(proc.stderr) or _exit_words(proc.returncode)
    msg = (
        f"git signs this repository's tags (tag.gpgSign is true), and it cannot sign now: "
        f"{why}; the release would deploy, then fail at its tag and roll back"
    )
    raise PreconditionFailed(
        msg,
        hint=(
            "fix the signing set-up (gpg.program, gpg.format, user.signingkey, the gpg or "
            f"ssh agent) until `git -C {root} commit-tree -S -m test HEAD^{{tree}}` works "
            "(it changes no branch or tag), then run again; "
            "or set tag.gpgSign to false for this repository"
        ),
    )


def _identity_of(proc: subprocess.CompletedProcess[str]) -> tuple[str, str] | None:
    """Name and email from `git var GIT_COMMITTER_IDENT`, or None when it found none."""
    if proc.returncode != 0:
        return None
    match = _IDENT.match(proc.stdout.strip())
    if not match or not match.group(1) or not match.group(2):
        return None
    return match.group(1), match.group(2)


def _tags_of(root: Path, proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Tag names and their commits, from `for-each-ref` in `_TAG_FORMAT`."""
    _check_repo(root, proc)
    if proc.returncode != 0:
        # An empty list would read as "no version released yet": the wrong rollback target.
        raise _git_failed(root, proc, "list the tags")
    found: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        parts = line.split("\0")
        if len(parts) != 5 or not parts[0]:
            continue
        name, kind, obj, peeled_kind, peeled = parts
        if kind == "commit":
            found[name] = obj
        elif kind == "tag" and peeled_kind == "commit":
            found[name] = peeled
        elif kind == "tag":
            # A tag of a tag: rare enough to ask git to peel it all the way.
            commit = _commit_of(root, f"refs/tags/{name}")
            if commit is not None:
                found[name] = commit
        # A tag of a tree or a blob marks no version.
    return found


def dirty_files(root: Path, *, ignore: Sequence[str] = DEFAULT_IGNORE) -> list[str]:
    """Files that are staged, modified or untracked, relative to the repository root.

    A path under an `ignore` prefix (a folder ends with '/') is left out. A byte that is not
    UTF-8 is kept as `os.fsdecode` keeps it, so the path opens the file.
    """
    proc = _git(root, *_STATUS, env=_STATUS_ENV, errors="surrogateescape")
    return [path for path in _changed_files(root, proc) if not _ignored(path, ignore)]


def untracked_outputs(state: RepoState, fds: Sequence[int]) -> list[str]:
    """The changed files of `state` that git does not track and that are open as one of
    `fds` (the process's stdout and stderr), as git names them.

    The shell creates the file of `drillbook release --format json > summary.json` before
    drillbook starts: in the checkout, it made the tree dirty, and the release refused itself.
    A tracked file overwritten so is a change all the same, and is not among them.
    """
    import stat

    opened = set()
    for fd in fds:
        try:
            found = os.fstat(fd)
        except OSError:  # closed (`>&-`)
            continue
        if stat.S_ISREG(found.st_mode):
            opened.add((found.st_dev, found.st_ino))
    if not opened:
        return []
    same = []
    for path in state.changed:
        try:
            found = (state.top / path).stat()
        except OSError:  # deleted: a change, never our output
            continue
        if (found.st_dev, found.st_ino) in opened:
            same.append(path)
    if not same:
        return []
    # Names as they are, not patterns: a `*` in a file name matches no other file.
    proc = _git(
        state.top,
        "ls-files",
        "-z",
        "--",
        *same,
        env={"GIT_LITERAL_PATHSPECS": "1"},
        errors="surrogateescape",
    )
    if proc.returncode != 0:  # unsure: the file stays a change of the tree
        return []
    tracked = set(proc.stdout.split("\0"))
    return [path for path in same if path not in tracked]


def _ignored(path: str, ignore: Sequence[str]) -> bool:
    for prefix in ignore:
        if prefix.endswith("/"):
            if path.startswith(prefix) or path == prefix.rstrip("/"):
                return True
        elif path == prefix:
            return True
    return False


# git's own escapes in a quoted path (`core.quotePath`).
_PATH_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}


def shown_path(path: str) -> str:
    """A path as a person may read it on a terminal: as it is when it is plain, else quoted
    and escaped as `git status` quotes it (`"new\\nline.txt"`, `"caf\\351"`).

    A name holds what its author put there: a line break would list one file as two, an
    escape sequence would repaint the terminal of the person on call.
    """
    if path.isprintable() and '"' not in path and "\\" not in path and path == path.strip():
        return path
    out = []
    for char in path:
        if char in _PATH_ESCAPES:
            out.append(_PATH_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        else:
            raw = char.encode("utf-8", "surrogateescape")
            out.append("".join(f"\\{byte:03o}" for byte in raw))
    return '"' + "".join(out) + '"'


def require_clean(
    root: Path, *, ignore: Sequence[str] = DEFAULT_IGNORE, state: RepoState | None = None
) -> None:
    """Raise `PreconditionFailed` listing the changed files unless the tree is clean.

    With `state`, the files of that look are judged instead of asking git again.
    """
    files = state.dirty_files(ignore=ignore) if state else dirty_files(root, ignore=ignore)
    if not files:
        return
    listed = [f"  {shown_path(name)}" for name in files[:MAX_LISTED]]
    if len(files) > MAX_LISTED:
        listed.append(f"  and {len(files) - MAX_LISTED} more")
    count = f"{len(files)} changed file" + ("s" if len(files) != 1 else "")
    # git names the files from the repository's top folder: in a project that is a folder of
    # a larger repository, `other.txt` is beside that folder, not in the project.
    top = state.top if state else repo_root(root)
    where = str(root) if _same_folder(top, root) else f"{top}, the git repository of {root},"
    msg = (
        f"the working tree in {where} is not clean: expected no uncommitted changes, "
        f"found {count}:\n" + "\n".join(listed)
    )
    hint = "commit or stash them (git stash --include-untracked), or add them to .gitignore"
    raise PreconditionFailed(msg, hint=hint)


def _same_folder(one: Path, other: Path) -> bool:
    try:
        return one.resolve() == other.resolve()
    except OSError:
        return one == other


def identity(root: Path) -> tuple[str, str] | None:
    """The name and email git would record as tagger, or None when none is configured.

    git itself decides: `user.name`/`user.email` (or `committer.*`) from any config level, or
    the GIT_COMMITTER_* and EMAIL variables; guessing from the machine is not accepted.
    """
    proc = _git(root, *_STRICT_IDENTITY, "var", "GIT_COMMITTER_IDENT")
    _check_repo(root, proc)
    return _identity_of(proc)


def require_identity(root: Path, *, state: RepoState | None = None) -> None:
    """Raise `PreconditionFailed` with the exact commands to run unless git has an identity.

    With `state`, the identity of that look is judged instead of asking git again.
    """
    if (state.identity if state else identity(root)) is not None:
        return
    msg = (
        "git has no identity to record on the tag: expected user.name and user.email to be "
        "set, found one or both missing"
    )
    hint = (
        f'run git -C {root} config user.name "Your Name" && '
        f"git -C {root} config user.email you@example.com (or use --global)"
    )
    raise PreconditionFailed(msg, hint=hint)


def tag_commit(root: Path, tag: str) -> str | None:
    """The commit a tag points at (annotated tags peeled), or None when there is no such tag."""
    return _commit_of(root, f"refs/tags/{tag}")


def tags(root: Path) -> list[str]:
    """Every tag name in the repository, sorted by name."""
    proc = _git(root, "for-each-ref", "--format=%(refname:strip=2)", "refs/tags")
    _check_repo(root, proc)
    if proc.returncode != 0:
        raise _git_failed(root, proc, "list the tags")
    return sorted(line for line in proc.stdout.splitlines() if line)


def previous_version(root: Path, version: str, tag_format: str = "v{version}") -> str | None:
    """The highest version below `version` that has a tag, or None when there is none.

    Tags that do not fit `tag_format` or are not semver are skipped. For a final release only
    final releases count (1.1.0-rc.1 is not what 1.1.0 rolls back to); for a pre-release,
    pre-releases count too.
    """
    found = _previous(tags(root), version, tag_format)
    if found is None:
        _require_tags_fetched(root, version, tag_format)
    return found


def is_shallow(root: Path) -> bool:
    """Whether the repository is a shallow clone (`git clone --depth`)."""
    proc = _git(root, "rev-parse", "--is-shallow-repository")
    _check_repo(root, proc)
    return proc.returncode == 0 and proc.stdout.strip() == "true"


def tags_left_unfetched(root: Path, *, shallow: bool | None = None) -> tuple[str, str] | None:
    """Why this clone may lack the tags of earlier releases, and how to fetch them; None
    when nothing says so.

    `git clone --depth 1` (and CI checkouts, which clone so by default) fetches only the tags
    on the commits it fetches; `git clone --no-tags` sets its remote never to fetch one
    (`remote.NAME.tagOpt`). Reading either as "no earlier release" would roll a failed
    release back to nothing and name no version to go back to. `shallow`, when known, saves
    asking git.
    """
    if shallow is None:
        shallow = is_shallow(root)
    if shallow:
        return (
            "it is a shallow clone: the tags of earlier releases were likely never fetched",
            "fetch the history and its tags: git fetch --unshallow --tags (in CI, clone with "
            "full history, e.g. actions/checkout with fetch-depth: 0), then run again",
        )
    # Asked only when no earlier version is tagged: a first release, or a clone without tags.
    proc = _git(root, "config", "--get-regexp", r"^remote\..*\.tagopt$")
    for line in proc.stdout.splitlines() if proc.returncode == 0 else ():
        key, _, value = line.partition(" ")
        if value.strip() == "--no-tags":
            name = key.removeprefix("remote.").removesuffix(".tagopt")
            return (
                f"its remote {name} is set to fetch no tags (remote.{name}.tagOpt is "
                "--no-tags, as `git clone --no-tags` sets): the tags of earlier releases were "
                "likely never fetched",
                f"fetch them: git fetch --tags {name}, then run again; if no version was "
                f"released before, or to fetch tags from now on: git config --unset "
                f"remote.{name}.tagOpt",
            )
    return None


def _require_tags_fetched(
    root: Path, version: str, tag_format: str, *, shallow: bool | None = None
) -> None:
    """Raise `TagsMissing` when no tag of a version below `version` was found and this clone
    may lack the tags of earlier releases (see `tags_left_unfetched`)."""
    unfetched = tags_left_unfetched(root, shallow=shallow)
    if unfetched is None:
        return
    why, hint = unfetched
    example = tag_format.replace("{version}", "X.Y.Z")
    msg = (
        f"no tag of a version below {version} (named like {example}) is in {root}, and {why}, "
        "so the version to roll back to is unknown"
    )
    raise TagsMissing(msg, hint=hint)


def tagged_versions(names: Sequence[str], tag_format: str = "v{version}") -> list[str]:
    """The semver versions that the tags among `names` mark, as `tag_format` spells them."""
    if tag_format.count("{version}") != 1:
        msg = (
            f"expected a tag format with {{version}} once, such as v{{version}}, got {tag_format!r}"
        )
        raise UsageError(msg)
    prefix, suffix = tag_format.split("{version}")
    pattern = re.compile(re.escape(prefix) + "(.+)" + re.escape(suffix))
    found = (pattern.fullmatch(name) for name in names)
    return [m.group(1) for m in found if m and is_semver(m.group(1))]


def _previous(names: Sequence[str], version: str, tag_format: str) -> str | None:
    if not is_semver(version):
        msg = f"expected a semver version such as 1.2.0, got {version!r}"
        raise UsageError(msg)
    return highest_below(tagged_versions(names, tag_format), version)


def _describe(root: Path, commit: str) -> str:
    """A commit as `3f2a1c9 ("its subject")`."""
    proc = _git(root, "log", "-1", "--format=%s", commit, "--")
    subject = proc.stdout.strip()
    return f'{commit[:7]} ("{subject}")' if subject else commit[:7]


def check_tag_name(tag: str) -> None:
    """Raise `UsageError` unless git accepts `tag` as a tag name (git's rules, no git call)."""
    problem = tag_name_problem(tag)
    if problem is not None:
        msg = f"expected a valid git tag name, got {tag!r}: {problem}"
        hint = "check the runbook's `tag:` format; names cannot hold spaces, '..', '~', '^' or ':'"
        raise UsageError(msg, hint=hint)


def create_tag(
    root: Path, tag: str, message: str, *, commit: str = "HEAD"
) -> Literal["created", "exists"]:
    """Make an annotated tag on `commit` holding `message` verbatim.

    A tag already on that commit is "exists": the step is done. A tag on another commit raises
    `PreconditionFailed` naming both commits; so do a missing commit and a missing identity.
    A full commit hash is taken as it is (a release tags the commit its preflight saw, even if
    HEAD moved since); any other name is resolved first.

    It acts, then looks: git refuses a tag that exists, and only then is asked why, so the
    usual case costs two git calls (the tag, and the look that proves it).
    """
    check_tag_name(tag)
    target = commit if _FULL_HASH.fullmatch(commit) else _commit_of(root, commit)
    if target is None:
        if commit == "HEAD":
            msg = f"cannot tag {tag}: expected a commit at HEAD, found no commits in {root}"
            hint = "commit your work first"
        else:
            msg = f"cannot tag {tag}: expected {commit} to be a commit, found no such commit"
            hint = "check the commit name"
        raise PreconditionFailed(msg, hint=hint)
    proc = _git(
        root,
        *_STRICT_IDENTITY,
        "tag",
        "--annotate",
        "--cleanup=verbatim",  # the default strips lines starting with '#', like "#oncall"
        "--file=-",
        "--",
        tag,
        target,
        stdin=message,
        timeout=60.0,
    )
    if proc.returncode != 0:
        _check_repo(root, proc)
        # Made before (a run resumed or repeated) or by someone else between the look and the
        # act: judged like a tag found before.
        existing = tag_commit(root, tag)
        if existing == target:
            return "exists"
        if existing is not None:
            raise _tag_elsewhere(root, tag, existing, commit, target)
        require_identity(root)
        why = _tail(proc.stderr) or _exit_words(proc.returncode)
        msg = f"git could not create the tag {tag} on {target[:7]}: {why}"
        raise PreconditionFailed(msg)
    if tag_commit(root, tag) != target:
        msg = f"git reported the tag {tag} made, but it does not point at {target[:7]}"
        raise PreconditionFailed(msg, hint=f"inspect it with git show {tag}")
    return "created"


def delete_tag(root: Path, tag: str) -> bool:
    """Delete a local tag (one this run made and must take back); False when it was absent."""
    if tag_commit(root, tag) is None:
        return False
    proc = _git(root, "tag", "--delete", "--", tag)
    if proc.returncode != 0:
        msg = f"git could not delete the tag {tag}: {_tail(proc.stderr)}"
        raise PreconditionFailed(msg, hint=f"delete it by hand with git tag -d {tag}")
    return True


def _tag_elsewhere(
    root: Path, tag: str, existing: str, commit: str, target: str
) -> PreconditionFailed:
    msg = (
        f"tag {tag} already exists on {_describe(root, existing)}, "
        f"expected it on {commit} {_describe(root, target)}"
    )
    hint = (
        f"delete it with git tag -d {tag} if it was made by mistake (and git push origin "
        f":refs/tags/{tag} if it was pushed), or release a new version"
    )
    return PreconditionFailed(msg, hint=hint)


#: The status `_run_remote` gives when the run's stop ended the command.
STOPPED = -1


def _run_remote(
    root: Path,
    args: Sequence[str],
    timeout: float,
    *,
    stop: StopToken | None = None,
    on_start: Callable[[int], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[int | None, str, str]:
    """Run a git command that talks to a remote: (exit status, None on timeout or `STOPPED`
    when `stop` ended it; out; err). `on_start` gets the pid (its process group's too)."""
    argv = ["git", "-C", str(root), *args]
    try:
        # A session of its own: no controlling terminal, so ssh cannot stop to ask for a
        # passphrase, and a timeout stops ssh along with git (their pipes would hold us).
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
            errors="replace",
            env={**_env(), **(env or {})},
            start_new_session=True,
        )
    except FileNotFoundError:
        return 127, "", "git is not installed"
    if on_start is not None:
        on_start(child.pid)
    deadline = time.monotonic() + timeout
    try:
        while True:
            # In short waits, so that Ctrl-C or SIGTERM stops a push that hangs at once rather
            # than after its timeout; without a stop token, one wait.
            left = deadline - time.monotonic()
            try:
                out, err = child.communicate(timeout=min(left, 0.1) if stop else max(left, 0))
                return child.returncode, out, err
            except subprocess.TimeoutExpired:
                stopped = stop is not None and stop.stopped
                if not stopped and time.monotonic() < deadline:
                    continue
                _kill_group(child.pid)
                out, err = child.communicate()
                return (STOPPED if stopped else None), out, err
    except BaseException:
        # Ctrl-C in a task without a stop token: git and ssh, in a session of their own,
        # would outlive drillbook.
        _kill_group(child.pid)
        raise


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def push_tag(
    root: Path,
    tag: str,
    remote: str = "origin",
    *,
    timeout: float = 60,
    stop: StopToken | None = None,
    on_start: Callable[[int], None] | None = None,
    env: Mapping[str, str] | None = None,
    mask: Callable[[str], str] | None = None,
) -> PushResult:
    """Push only `refs/tags/TAG` to `remote`; a failure is reported in the result, not raised.

    With `stop`, a stop of the run (Ctrl-C, SIGTERM) ends the push at once: "interrupted".
    `mask` masks what git and origin said before its tail is cut: a secret across the cut
    would leave a piece of itself that no masker knows.
    """
    ref = f"refs/tags/{tag}"
    status, out, err = _run_remote(
        root, ["push", "--", remote, f"{ref}:{ref}"], timeout, stop=stop, on_start=on_start, env=env
    )
    said = "\n".join(part for part in (err, out) if part.strip())
    tail = _tail(mask(said) if mask is not None else said)
    if status == 0:
        if "Everything up-to-date" in said:
            # The remote had this very tag object: `tag --push` run again said "pushed".
            detail = f"{remote} already has {tag}; nothing was pushed"
            return PushResult(tag, remote, "ok", detail, tail, already=True)
        return PushResult(tag, remote, "ok", f"pushed {tag} to {remote}", tail)
    if status == STOPPED:
        detail = f"the run was stopped while pushing {tag}; the remote may or may not have it"
        return PushResult(tag, remote, "interrupted", detail, tail)
    if status is None:
        detail = f"no answer from {remote} within {timeout:g}s"
    else:
        if "(already exists)" in tail:
            # The remote has a tag of that name. On the same commit (made by another clone
            # of the release, or by CI) the release is marked there: no retry would change
            # it, and none is needed.
            theirs = remote_tag(root, tag, remote, timeout=timeout)
            ours = tag_commit(root, tag)
            if theirs.answered and ours is not None and theirs.commit == ours:
                detail = (
                    f"{remote} already has {tag} on {ours[:9]}, as another tag object; "
                    "nothing was pushed"
                )
                return PushResult(tag, remote, "ok", detail, tail, already=True)
        why = _first_error(tail)
        detail = f"git push exited {status}" + (f": {why}" if why else "")
    return PushResult(tag, remote, "failed", detail, tail)


def _first_error(output: str) -> str:
    """The line of git's output that says what went wrong: its first `fatal:` or `error:`.

    git ends a failed push with advice ("Please make sure you have the correct access rights
    and the repository exists."), so its last line says least.
    """
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:", "remote: error:", "! [rejected]", "! [remote")):
            return line
    return lines[-1] if lines else ""


def remote_url(root: Path, remote: str = "origin") -> str | None:
    """The URL of `remote` (credentials masked), or None when the repository has no such one."""
    proc = _git(root, "remote", "get-url", "--", remote)
    _check_repo(root, proc)
    if proc.returncode != 0:
        return None
    return _URL_USERINFO.sub(r"\1***@", proc.stdout.strip())


@dataclass(frozen=True)
class RemoteTag:
    """What a remote said about one tag."""

    tag: str
    remote: str
    #: Whether the remote answered; when it did not, `commit` says nothing.
    answered: bool
    #: The commit the remote's tag points at (an annotated tag peeled); None when it has none.
    commit: str | None = None
    #: Why the remote could not be asked, in one line.
    detail: str = ""


def remote_tag(root: Path, tag: str, remote: str = "origin", *, timeout: float = 30.0) -> RemoteTag:
    """Ask `remote` (read-only, `git ls-remote`) which commit its tag `tag` points at."""
    ref = f"refs/tags/{tag}"
    # Both names: the remote lists `TAG^{}`, the commit, only for an annotated tag asked so.
    status, out, err = _run_remote(root, ["ls-remote", "--", remote, ref, ref + "^{}"], timeout)
    if status != 0:
        why = (
            f"no answer within {timeout:g}s"
            if status is None
            else _first_error(_tail(err)) or f"git ls-remote exited {status}"
        )
        return RemoteTag(tag, remote, answered=False, detail=why)
    found: dict[str, str] = {}
    for line in out.splitlines():
        obj, _, name = line.partition("\t")
        found[name.strip()] = obj.strip()
    commit = found.get(ref + "^{}") or found.get(ref)
    return RemoteTag(tag, remote, answered=True, commit=commit)


def remote_has_tag(root: Path, tag: str, remote: str = "origin") -> bool | None:
    """Whether `remote` has the tag, or None when the remote cannot be asked."""
    found = remote_tag(root, tag, remote)
    return found.commit is not None if found.answered else None
