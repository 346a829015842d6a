"""gitops against real git repositories (and a real bare remote) in tmp_path."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drillbook import gitops
from drillbook.errors import EXIT_PRECONDITION, PreconditionFailed, TagsMissing, UsageError

IDENTITY_VARS = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git config; an identity from the environment, as CI would set it."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("EMAIL", raising=False)
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Alice Example")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "alice@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Alice Example")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "alice@example.com")


@pytest.fixture
def no_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in IDENTITY_VARS:
        monkeypatch.delenv(name, raising=False)


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def commit(root: Path, name: str = "file.txt", text: str = "x\n", message: str = "change") -> str:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(root, "add", name)
    # An identity of its own, so commits work in the tests that take git's identity away.
    who = ("-c", "user.name=Fixture", "-c", "user.email=fixture@example.com")
    git(root, *who, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def empty_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "-c", "init.defaultBranch=main", "init", "-q")
    return root


@pytest.fixture
def repo(empty_repo: Path) -> Path:
    commit(empty_repo, "README.md", "hello\n", "first commit")
    return empty_repo


@pytest.fixture
def remote(tmp_path: Path, repo: Path) -> Path:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    return bare


# --- repository and HEAD ------------------------------------------------------------------------


def test_repo_root_from_a_subfolder(repo: Path) -> None:
    sub = repo / "a" / "b"
    sub.mkdir(parents=True)
    assert gitops.repo_root(sub).resolve() == repo.resolve()


@pytest.mark.parametrize("kind", ["plain folder", "missing folder"])
def test_not_a_repository(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "plain"
    if kind == "plain folder":
        path.mkdir()
    with pytest.raises(PreconditionFailed) as exc:
        gitops.repo_root(path)
    assert exc.value.exit_code == EXIT_PRECONDITION
    assert exc.value.message == f"not a git repository: {path}"
    assert "git init" in (exc.value.hint or "")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a repository to another user")
def test_a_repository_of_another_user_names_the_folder_safe_directory_needs(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A project in a folder of the repository: git judges, and accepts, only the top folder.
    project = repo / "services" / "shop"
    project.mkdir(parents=True)
    commit(repo, "services/shop/app.py", "print('hi')\n")
    subprocess.run(["chown", "-R", "65534:65534", str(repo)], check=True)
    with pytest.raises(PreconditionFailed) as exc:
        gitops.look(project)
    assert exc.value.message == (
        f"git refuses to work in {project}: the repository at {repo} is owned by another user"
    )
    assert exc.value.hint == f"git config --global --add safe.directory {repo}"

    # The hint, as given, is what makes git work there again.
    config = tmp_path / "gitconfig"
    config.touch()
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    subprocess.run(shlex.split(exc.value.hint), check=True)
    assert gitops.look(project).head == gitops.head_commit(repo)


@pytest.mark.parametrize("ceiling", ["repo", "repo/services"])
def test_a_repository_hidden_by_git_ceiling_directories_is_named_not_init_advised(
    repo: Path, monkeypatch: pytest.MonkeyPatch, ceiling: str
) -> None:
    project = repo / "services" / "shop"
    project.mkdir(parents=True)
    stop = str(repo.parent / ceiling)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", f"/nowhere:{stop}")
    with pytest.raises(PreconditionFailed) as exc:
        gitops.look(project)
    assert exc.value.message == (
        f"not a git repository: {project}; GIT_CEILING_DIRECTORIES holds {stop}, so git looks "
        f"for a repository only below it, and the one above the project is at {repo}"
    )
    assert exc.value.hint == (
        f"if the project belongs to the repository at {repo}, take {stop} out of "
        f"GIT_CEILING_DIRECTORIES; if not, run `git init` in {project} and commit"
    )

    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(repo.parent))  # above it: no matter
    assert gitops.look(project).top.resolve() == repo.resolve()


def test_head_commit(empty_repo: Path) -> None:
    assert gitops.head_commit(empty_repo) is None
    sha = commit(empty_repo)
    assert gitops.head_commit(empty_repo) == sha
    assert len(sha) == 40


def test_repository_variables_from_a_hook_do_not_redirect_git(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    (other / "dirty.txt").write_text("x")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    assert gitops.dirty_files(repo) == []
    assert gitops.head_commit(repo) == git(
        repo, "--git-dir", str(repo / ".git"), "rev-parse", "HEAD"
    )


# --- clean and dirty ----------------------------------------------------------------------------


def test_clean_tree(repo: Path) -> None:
    assert gitops.dirty_files(repo) == []
    gitops.require_clean(repo)


def test_dirty_tree_staged_modified_untracked(repo: Path) -> None:
    commit(repo, "tracked.txt", "one\n")
    (repo / "tracked.txt").write_text("two\n")  # modified, unstaged
    (repo / "staged.txt").write_text("new\n")
    git(repo, "add", "staged.txt")  # staged
    (repo / "notes" / "deep").mkdir(parents=True)
    (repo / "notes" / "deep" / "new file ü.md").write_text("untracked\n")  # untracked, odd name
    (repo / ".drillbook" / "journal").mkdir(parents=True)
    (repo / ".drillbook" / "journal" / "run.jsonl").write_text("{}\n")  # drillbook's own
    assert sorted(gitops.dirty_files(repo)) == [
        "notes/deep/new file ü.md",
        "staged.txt",
        "tracked.txt",
    ]
    assert ".drillbook/journal/run.jsonl" in gitops.dirty_files(repo, ignore=())
    with pytest.raises(PreconditionFailed) as exc:
        gitops.require_clean(repo)
    message = str(exc.value)
    assert "found 3 changed files" in message
    assert "  tracked.txt" in message
    assert "  notes/deep/new file ü.md" in message
    assert ".drillbook" not in message
    assert "git stash" in (exc.value.hint or "")


def test_dirty_file_names_are_listed_readably_one_a_line_and_never_as_terminal_codes(
    repo: Path,
) -> None:
    names = {
        b"new\nline.txt": '"new\\nline.txt"',
        b"paint\x1b[31mred": '"paint\\033[31mred"',
        b'say "hi"': '"say \\"hi\\""',
        b"caf\xe9.txt": '"caf\\351.txt"',  # Latin-1: not UTF-8
        b" lead.txt": '" lead.txt"',
        "rtl\u202etxt.exe".encode(): '"rtl\\342\\200\\256txt.exe"',
        "plain ü.md".encode(): "plain ü.md",
    }
    for raw in names:
        (repo / os.fsdecode(raw)).write_text("x\n")

    assert sorted(gitops.dirty_files(repo)) == sorted(os.fsdecode(raw) for raw in names)
    for state in (None, gitops.look(repo)):
        with pytest.raises(PreconditionFailed) as exc:
            gitops.require_clean(repo, state=state)
        header, *listed = exc.value.message.split("\n")
        assert header.endswith("found 7 changed files:")
        assert sorted(listed) == sorted(f"  {shown}" for shown in names.values())
        # One file a line, and nothing on a line a terminal would act on.
        assert all(line.isprintable() for line in listed)


def test_rename_is_listed_once_by_its_new_name(repo: Path) -> None:
    git(repo, "mv", "README.md", "READ-ME.md")
    assert gitops.dirty_files(repo) == ["READ-ME.md"]


def test_deleted_file_is_dirty(repo: Path) -> None:
    (repo / "README.md").unlink()
    assert gitops.dirty_files(repo) == ["README.md"]


def test_long_list_is_cut_at_twenty(repo: Path) -> None:
    for i in range(25):
        (repo / f"f{i:02}.txt").write_text("x")
    with pytest.raises(PreconditionFailed) as exc:
        gitops.require_clean(repo)
    message = exc.value.message
    assert "found 25 changed files" in message
    assert "  f19.txt" in message
    assert "  f20.txt" not in message
    assert message.endswith("  and 5 more")


def test_dirty_repository_without_commits(empty_repo: Path) -> None:
    (empty_repo / "a.txt").write_text("x")
    assert gitops.dirty_files(empty_repo) == ["a.txt"]


# --- identity -----------------------------------------------------------------------------------


def test_identity_from_environment(repo: Path) -> None:
    assert gitops.identity(repo) == ("Alice Example", "alice@example.com")
    gitops.require_identity(repo)


@pytest.mark.usefixtures("no_identity")
def test_identity_from_repository_config(repo: Path) -> None:
    git(repo, "config", "user.name", "Bob Config")
    git(repo, "config", "user.email", "bob@example.com")
    assert gitops.identity(repo) == ("Bob Config", "bob@example.com")


@pytest.mark.usefixtures("no_identity")
def test_no_identity(repo: Path) -> None:
    assert gitops.identity(repo) is None
    with pytest.raises(PreconditionFailed) as exc:
        gitops.require_identity(repo)
    assert exc.value.exit_code == EXIT_PRECONDITION
    assert "expected user.name and user.email" in exc.value.message
    assert f'git -C {repo} config user.name "Your Name"' in (exc.value.hint or "")
    assert "config user.email" in (exc.value.hint or "")


@pytest.mark.usefixtures("no_identity")
def test_name_without_email_is_no_identity(repo: Path) -> None:
    git(repo, "config", "user.name", "Bob Config")
    assert gitops.identity(repo) is None


@pytest.mark.usefixtures("no_identity")
def test_create_tag_without_identity_makes_no_tag(repo: Path) -> None:
    with pytest.raises(PreconditionFailed):
        gitops.create_tag(repo, "v1.0.0", "release")
    assert gitops.tags(repo) == []


# --- tags ---------------------------------------------------------------------------------------


def test_create_annotated_tag_with_verbatim_message(repo: Path) -> None:
    message = (
        "demo-service 1.1.0\n"
        "\n"
        "- audit-log (owner: alice): Record who changed an order\n"
        "#storefront-oncall is where to page\n"
        "rollback: deploy 1.0.0 again\n"
    )
    assert gitops.tag_commit(repo, "v1.1.0") is None
    assert gitops.create_tag(repo, "v1.1.0", message) == "created"
    assert gitops.tag_commit(repo, "v1.1.0") == gitops.head_commit(repo)
    assert git(repo, "cat-file", "-t", "refs/tags/v1.1.0") == "tag"  # annotated, not lightweight
    body = git(repo, "for-each-ref", "--format=%(contents)", "refs/tags/v1.1.0")
    assert body == message.strip()
    assert git(repo, "for-each-ref", "--format=%(taggername)", "refs/tags/v1.1.0") == (
        "Alice Example"
    )
    assert gitops.tags(repo) == ["v1.1.0"]


def test_create_tag_on_the_same_commit_is_done(repo: Path) -> None:
    assert gitops.create_tag(repo, "v1.0.0", "first") == "created"
    tag_object = git(repo, "rev-parse", "refs/tags/v1.0.0")
    assert gitops.create_tag(repo, "v1.0.0", "second message") == "exists"
    assert git(repo, "rev-parse", "refs/tags/v1.0.0") == tag_object  # not remade


def test_lightweight_tag_on_the_same_commit_is_done(repo: Path) -> None:
    git(repo, "tag", "v1.0.0")
    assert gitops.create_tag(repo, "v1.0.0", "release") == "exists"


def test_create_tag_on_another_commit_is_refused(repo: Path) -> None:
    first = gitops.head_commit(repo)
    assert first is not None
    gitops.create_tag(repo, "v1.1.0", "release")
    head = commit(repo, message="later work")
    with pytest.raises(PreconditionFailed) as exc:
        gitops.create_tag(repo, "v1.1.0", "release")
    assert exc.value.exit_code == EXIT_PRECONDITION
    assert exc.value.message == (
        f'tag v1.1.0 already exists on {first[:7]} ("first commit"), '
        f'expected it on HEAD {head[:7]} ("later work")'
    )
    assert "git tag -d v1.1.0" in (exc.value.hint or "")
    assert "release a new version" in (exc.value.hint or "")
    assert gitops.tag_commit(repo, "v1.1.0") == first  # left as it was


def test_create_tag_on_an_explicit_commit(repo: Path) -> None:
    first = gitops.head_commit(repo)
    commit(repo, message="later work")
    assert first is not None
    assert gitops.create_tag(repo, "v0.9.0", "old", commit=first) == "created"
    assert gitops.tag_commit(repo, "v0.9.0") == first


def test_create_tag_without_commits(empty_repo: Path) -> None:
    with pytest.raises(PreconditionFailed) as exc:
        gitops.create_tag(empty_repo, "v1.0.0", "release")
    assert "found no commits" in exc.value.message


@pytest.mark.parametrize("name", ["has space", "-d", "a..b", "", "v1^"])
def test_invalid_tag_name(repo: Path, name: str) -> None:
    with pytest.raises(UsageError):
        gitops.create_tag(repo, name, "release")
    assert gitops.tags(repo) == []


def test_a_tag_git_would_refuse_is_found_without_making_it(repo: Path) -> None:
    refs = list((repo / ".git" / "refs").rglob("*"))
    gitops.require_taggable(repo, "v1.0.0")
    assert gitops.tags(repo) == []
    assert list((repo / ".git" / "refs").rglob("*")) == refs  # no ref, no lock left

    # A git killed while making that tag left its lock.
    (repo / ".git" / "refs" / "tags" / "v1.0.0.lock").touch()
    with pytest.raises(PreconditionFailed) as exc:
        gitops.require_taggable(repo, "v1.0.0")
    assert exc.value.message.startswith("git would refuse the tag v1.0.0 on HEAD: fatal: ")
    assert "v1.0.0.lock': File exists." in exc.value.message
    assert "delete the .lock file" in (exc.value.hint or "")
    gitops.require_taggable(repo, "v1.0.1")  # another tag takes another lock
    assert gitops.tags(repo) == []


def test_a_git_without_ref_transactions_is_no_reason_to_refuse_a_tag(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # git before 2.27, whose update-ref --stdin knows no `start`.
    old = tmp_path / "bin"
    _git_wrapper(
        old,
        '[ "$3" = update-ref ] && { echo "fatal: unknown command: start" >&2; exit 128; }',
    )
    monkeypatch.setenv("PATH", f"{old}{os.pathsep}{os.environ['PATH']}")
    gitops.require_taggable(repo, "v1.0.0")
    assert gitops.create_tag(repo, "v1.0.0", "1.0.0") == "created"


def test_delete_tag(repo: Path) -> None:
    gitops.create_tag(repo, "v1.0.0", "release")
    assert gitops.delete_tag(repo, "v1.0.0") is True
    assert gitops.tag_commit(repo, "v1.0.0") is None
    assert gitops.delete_tag(repo, "v1.0.0") is False


def test_create_tag_on_a_full_hash_takes_it_as_it_is(repo: Path) -> None:
    first = gitops.head_commit(repo)
    assert first is not None
    commit(repo, message="HEAD moved on")
    assert gitops.create_tag(repo, "v1.0.0", "release", commit=first) == "created"
    assert gitops.tag_commit(repo, "v1.0.0") == first


def test_create_tag_on_a_missing_full_hash_makes_no_tag(repo: Path) -> None:
    with pytest.raises(PreconditionFailed) as exc:
        gitops.create_tag(repo, "v1.0.0", "release", commit="0" * 40)
    assert "could not create the tag v1.0.0 on 0000000" in exc.value.message
    assert gitops.tags(repo) == []


# --- one look at a repository -------------------------------------------------------------------


def test_look_at_a_repository(repo: Path) -> None:
    first = gitops.head_commit(repo)
    git(repo, "tag", "v1.0.0")  # lightweight
    head = commit(repo, message="second")
    git(repo, "tag", "-a", "-m", "annotated", "v1.1.0")
    git(repo, "tag", "-a", "-m", "a tag of a tag", "v1.1.0-again", "v1.1.0")
    tree = git(repo, "rev-parse", "HEAD^{tree}")
    git(repo, "tag", "a-tree", tree)
    (repo / "new.txt").write_text("x")
    (repo / ".drillbook").mkdir()
    (repo / ".drillbook" / "lock").write_text("x")
    state = gitops.look(repo / ".drillbook")  # from a subfolder, as a user may stand there
    assert state.top.resolve() == repo.resolve()
    assert state.head == head
    assert state.identity == ("Alice Example", "alice@example.com")
    assert dict(state.tags) == {"v1.0.0": first, "v1.1.0": head, "v1.1.0-again": head}
    assert state.tag_commit("v1.1.0") == head
    assert state.tag_commit("v9.9.9") is None
    assert state.dirty_files() == ["new.txt"]
    assert sorted(state.dirty_files(ignore=())) == [".drillbook/lock", "new.txt"]
    assert state.previous_version("1.2.0") == "1.1.0"
    assert state.previous_version("1.1.0") == "1.0.0"
    # The same answers as the one-call-at-a-time functions.
    assert state.dirty_files() == gitops.dirty_files(repo)
    assert state.identity == gitops.identity(repo)
    assert state.previous_version("1.2.0") == gitops.previous_version(repo, "1.2.0")
    with pytest.raises(PreconditionFailed) as exc:
        gitops.require_clean(repo, state=state)
    assert "found 1 changed file:" in exc.value.message


def test_a_rebase_or_a_bisect_under_way_is_no_head_to_release(repo: Path, tmp_path: Path) -> None:
    commit(repo, text="two\n", message="two")
    assert gitops.look(repo).under_way is None
    gitops.require_settled(gitops.look(repo))

    # Stopped at an `edit`: the tree is clean, HEAD detached, and the rebase not done.
    editor = "sed -i 1s/^pick/edit/"
    git(repo, "-c", f"sequence.editor={editor}", "rebase", "-q", "-i", "HEAD~1")
    state = gitops.look(repo)
    assert state.under_way == "rebase"
    assert state.dirty_files() == []
    with pytest.raises(PreconditionFailed) as exc:
        gitops.require_settled(state)
    assert exc.value.message == (
        f"a git rebase is under way in {state.top}: HEAD {state.head[:9]} is a commit the "
        "rebase may still rewrite, so a release tag on it could mark code no branch holds"
    )
    assert "git rebase --abort" in (exc.value.hint or "")
    git(repo, "rebase", "--abort")

    git(repo, "bisect", "start")
    # In a linked worktree as in the main one: the worktree's own git folder is read.
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "--detach", str(linked))
    assert gitops.look(repo).under_way == "bisect"
    assert gitops.look(linked).under_way is None
    with pytest.raises(PreconditionFailed) as exc:
        gitops.require_settled(gitops.look(repo))
    assert "a git bisect is under way" in exc.value.message
    assert exc.value.hint == "end it with git bisect reset, then run again"
    git(repo, "bisect", "reset")
    assert gitops.look(repo).under_way is None


def test_look_at_a_repository_without_commits(empty_repo: Path) -> None:
    (empty_repo / "a.txt").write_text("x")
    state = gitops.look(empty_repo)
    assert state.head is None
    assert state.top.resolve() == empty_repo.resolve()
    assert state.dirty_files() == ["a.txt"]
    assert dict(state.tags) == {}


@pytest.mark.usefixtures("no_identity")
def test_look_without_identity(repo: Path) -> None:
    state = gitops.look(repo)
    assert state.identity is None
    with pytest.raises(PreconditionFailed) as exc:
        gitops.require_identity(repo, state=state)
    assert "expected user.name and user.email" in exc.value.message


def test_look_outside_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(PreconditionFailed) as exc:
        gitops.look(plain)
    assert exc.value.message == f"not a git repository: {plain}"


def test_look_without_git(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo / "no-such-folder"))
    with pytest.raises(PreconditionFailed) as exc:
        gitops.look(repo)
    assert "git is not installed" in exc.value.message


# --- previous version ---------------------------------------------------------------------------


@pytest.fixture
def tagged(repo: Path) -> Path:
    for name in [
        "v0.9.0",
        "v1.0.0",
        "v1.1.0-rc.1",
        "v1.1.0",
        "v1.2.0-beta",
        "v1.10.0",
        "v2.0.0-rc.1",
        "release-1.5.0",
        "vnext",
        "v1.3",
        "1.9.0",
    ]:
        git(repo, "tag", name)
    return repo


@pytest.mark.parametrize(
    ("version", "previous"),
    [
        ("1.2.0", "1.1.0"),  # not 1.2.0-beta: a final release rolls back to a final release
        ("1.1.0", "1.0.0"),  # not its own release candidate
        ("1.11.0", "1.10.0"),  # numeric, not text order
        ("2.0.0", "1.10.0"),
        ("2.0.0-rc.2", "2.0.0-rc.1"),  # a pre-release may follow a pre-release
        ("1.2.0-rc.1", "1.2.0-beta"),
        ("1.0.0", "0.9.0"),
        ("0.9.0", None),
        ("0.1.0", None),
    ],
)
def test_previous_version(tagged: Path, version: str, previous: str | None) -> None:
    assert gitops.previous_version(tagged, version) == previous


def test_previous_version_with_a_custom_tag_format(tagged: Path) -> None:
    assert gitops.previous_version(tagged, "2.0.0", "release-{version}") == "1.5.0"
    assert gitops.previous_version(tagged, "2.0.0", "{version}") == "1.9.0"


def test_previous_version_without_tags(repo: Path) -> None:
    assert gitops.previous_version(repo, "1.0.0") is None


def test_a_shallow_clone_without_older_tags_does_not_say_there_is_no_previous_version(
    repo: Path, tmp_path: Path
) -> None:
    git(repo, "tag", "v1.0.0")
    commit(repo, text="1.1.0\n", message="1.1.0")
    git(repo, "tag", "-a", "v1.1.0", "-m", "1.1.0")
    commit(repo, text="1.2.0\n", message="1.2.0")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(clone))

    state = gitops.look(clone)
    assert state.shallow
    assert not gitops.look(repo).shallow
    for probe in (
        lambda: state.previous_version("1.2.0"),
        lambda: gitops.previous_version(clone, "1.2.0"),
    ):
        with pytest.raises(TagsMissing) as exc:
            probe()
        assert exc.value.exit_code == EXIT_PRECONDITION
        assert "no tag of a version below 1.2.0 (named like vX.Y.Z)" in exc.value.message
        assert "shallow clone" in exc.value.message
        assert "git fetch --unshallow --tags" in (exc.value.hint or "")

    git(clone, "fetch", "-q", "--tags")  # the tags, and the commits they mark, fetched
    assert gitops.look(clone).previous_version("1.2.0") == "1.1.0"
    assert gitops.previous_version(clone, "1.1.0") == "1.0.0"


def test_names_that_are_not_utf8_are_read_not_a_crash(repo: Path) -> None:
    # git names are bytes: a tag and a file named in Latin-1, as an old tool may have made them.
    git(repo, "tag", "v1.0.0")
    subprocess.run(["git", "-C", str(repo), "tag", b"caf\xe9"], check=True)
    (repo / os.fsdecode(b"r\xe9sum\xe9.txt")).write_text("x\n")

    state = gitops.look(repo)

    assert state.previous_version("1.1.0") == "1.0.0"
    assert "caf\ufffd" in state.tags
    assert state.dirty_files() == [os.fsdecode(b"r\xe9sum\xe9.txt")]  # a path that opens
    assert gitops.previous_version(repo, "1.1.0") == "1.0.0"


def test_a_repository_in_a_folder_named_not_in_utf8_is_its_own_top(tmp_path: Path) -> None:
    top = tmp_path / os.fsdecode(b"caf\xe9")
    top.mkdir()
    git(top, "-c", "init.defaultBranch=main", "init", "-q")
    commit(top)
    (top / "dirty.txt").write_text("x\n")

    state = gitops.look(top)
    assert state.top == top  # the folder Python names, not one with U+FFFD in its place
    assert gitops.repo_root(top) == top
    with pytest.raises(PreconditionFailed) as exc:
        gitops.require_clean(top, state=state)
    assert exc.value.message.startswith(f"the working tree in {top} is not clean:")


def test_a_tag_message_goes_in_as_utf8_whatever_the_locale(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A C locale without UTF-8 (as in a bare container): Python's default encoding is ASCII.
    script = (
        "import sys; from pathlib import Path; from drillbook import gitops; "
        "gitops.create_tag(Path(sys.argv[1]), 'v1.0.0', 'Caf\\u00e9 \\u2615 \\u6ce8\\n')"
    )  # escapes: the command line itself must stay ASCII
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(repo)], env=env, capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    body = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "tag", "v1.0.0"], capture_output=True, check=True
    ).stdout
    assert body.endswith("Caf\u00e9 \u2615 \u6ce8\n".encode())


@pytest.mark.parametrize(("version", "fmt"), [("1.0", "v{version}"), ("1.0.0", "v1")])
def test_previous_version_bad_input(repo: Path, version: str, fmt: str) -> None:
    with pytest.raises(UsageError):
        gitops.previous_version(repo, version, fmt)


# --- pushing ------------------------------------------------------------------------------------


def test_push_only_the_tag(repo: Path, remote: Path) -> None:
    gitops.create_tag(repo, "v0.9.0", "older, not pushed")
    commit(repo, message="release work")
    gitops.create_tag(repo, "v1.0.0", "release")
    assert gitops.remote_has_tag(repo, "v1.0.0") is False
    result = gitops.push_tag(repo, "v1.0.0")
    assert result.ok, result
    assert (result.tag, result.remote, result.outcome) == ("v1.0.0", "origin", "ok")
    assert "v1.0.0" in result.output_tail
    assert git(remote, "for-each-ref", "--format=%(refname)") == "refs/tags/v1.0.0"
    assert git(remote, "cat-file", "-t", "refs/tags/v1.0.0") == "tag"
    assert gitops.remote_has_tag(repo, "v1.0.0") is True
    assert gitops.remote_has_tag(repo, "v0.9.0") is False
    # Pushing again is not an error: the remote already has it.
    assert gitops.push_tag(repo, "v1.0.0").ok


def test_remote_tag_names_the_commit_annotated_or_lightweight(repo: Path, remote: Path) -> None:
    head = gitops.head_commit(repo)
    gitops.create_tag(repo, "v1.0.0", "release")
    git(repo, "tag", "light")
    assert gitops.push_tag(repo, "v1.0.0").ok
    assert gitops.push_tag(repo, "light").ok

    assert gitops.remote_tag(repo, "v1.0.0").commit == head  # peeled, not the tag object
    assert gitops.remote_tag(repo, "light").commit == head
    absent = gitops.remote_tag(repo, "v2.0.0")
    assert (absent.answered, absent.commit) == (True, None)
    gone = gitops.remote_tag(repo, "v1.0.0", "nowhere")
    assert not gone.answered
    assert "does not appear to be a git repository" in gone.detail


def test_push_to_a_missing_remote_fails_and_keeps_the_tag(repo: Path) -> None:
    gitops.create_tag(repo, "v1.0.0", "release")
    result = gitops.push_tag(repo, "v1.0.0", "nowhere", timeout=30)
    assert not result.ok
    assert result.outcome == "failed"
    # The line that says what went wrong, not git's closing advice.
    assert result.detail == (
        "git push exited 128: fatal: 'nowhere' does not appear to be a git repository"
    )
    assert "does not appear to be a git repository" in result.output_tail
    assert gitops.tag_commit(repo, "v1.0.0") == gitops.head_commit(repo)
    assert gitops.remote_has_tag(repo, "v1.0.0", "nowhere") is None


def test_failed_push_then_a_later_push_succeeds_without_a_second_tag(
    tmp_path: Path, repo: Path
) -> None:
    gone = tmp_path / "not-yet.git"
    git(repo, "remote", "add", "origin", str(gone))
    gitops.create_tag(repo, "v1.0.0", "release")
    assert not gitops.push_tag(repo, "v1.0.0").ok
    git(tmp_path, "init", "-q", "--bare", str(gone))
    assert gitops.create_tag(repo, "v1.0.0", "release") == "exists"
    assert gitops.push_tag(repo, "v1.0.0").ok
    assert gitops.remote_has_tag(repo, "v1.0.0") is True


def test_push_is_refused_when_the_remote_tag_differs(repo: Path, remote: Path) -> None:
    gitops.create_tag(repo, "v1.0.0", "release")
    assert gitops.push_tag(repo, "v1.0.0").ok
    git(repo, "tag", "-d", "v1.0.0")
    commit(repo, message="other work")
    gitops.create_tag(repo, "v1.0.0", "release again")
    result = gitops.push_tag(repo, "v1.0.0")
    assert not result.ok
    assert "rejected" in result.output_tail
    assert "[rejected]" in result.detail


def test_push_when_the_remote_has_the_tag_on_the_same_commit_is_done(
    repo: Path, remote: Path
) -> None:
    gitops.create_tag(repo, "v1.0.0", "made by another clone")
    assert gitops.push_tag(repo, "v1.0.0").ok
    git(repo, "tag", "-d", "v1.0.0")
    gitops.create_tag(repo, "v1.0.0", "made again here")  # same commit, another object

    result = gitops.push_tag(repo, "v1.0.0")

    assert (result.ok, result.already) == (True, True)
    assert result.detail.startswith("origin already has v1.0.0 on ")
    assert "nothing was pushed" in result.detail


def test_push_of_a_tag_that_does_not_exist(repo: Path, remote: Path) -> None:
    result = gitops.push_tag(repo, "v9.9.9")
    assert not result.ok
    assert "does not match any" in result.output_tail


def test_push_masks_credentials_in_urls_in_the_output(repo: Path, remote: Path) -> None:
    # The remote's hook echoes a URL with credentials, as some servers' messages do.
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\necho 'rejected, see https://bot:hunter2@ci.example/job/7' >&2\nexit 1\n"
    )
    hook.chmod(0o755)
    gitops.create_tag(repo, "v1.0.0", "release")
    result = gitops.push_tag(repo, "v1.0.0")
    assert not result.ok
    assert "https://***@ci.example/job/7" in result.output_tail
    assert "hunter2" not in result.detail + result.output_tail


def test_push_that_hangs_is_stopped_at_its_timeout(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An "ssh" whose child keeps the pipes open: the whole process group must be stopped.
    fake_ssh = tmp_path / "hanging-ssh"
    fake_ssh.write_text("#!/bin/sh\nsleep 30 &\nwait\n")
    fake_ssh.chmod(0o755)
    monkeypatch.setenv("GIT_SSH", str(fake_ssh))
    git(repo, "remote", "add", "origin", "ssh://git@example.invalid/x.git")
    gitops.create_tag(repo, "v1.0.0", "release")
    started = time.monotonic()
    result = gitops.push_tag(repo, "v1.0.0", timeout=1)
    assert time.monotonic() - started < 10
    assert not result.ok
    assert result.detail == "no answer from origin within 1s"
    assert gitops.tag_commit(repo, "v1.0.0") is not None


# --- git missing --------------------------------------------------------------------------------


def _git_wrapper(folder: Path, script: str) -> None:
    """A `git` first on PATH: `script` (sh) runs, then, unless it exited, the real git."""
    real = shutil.which("git")
    folder.mkdir()
    (folder / "git").write_text(f'#!/bin/sh\n{script}\nexec {real} "$@"\n')
    (folder / "git").chmod(0o755)


def test_a_git_that_fails_is_said_not_taken_for_no_repository(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "bin"
    _git_wrapper(
        broken, "echo 'git: error while loading shared libraries: libz.so.1' >&2\nexit 127"
    )
    monkeypatch.setenv("PATH", f"{broken}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(PreconditionFailed) as exc:
        gitops.look(repo)
    assert exc.value.message == (
        f"git could not read the repository in {repo}: "
        "git: error while loading shared libraries: libz.so.1"
    )
    assert "git init" not in (exc.value.hint or "")
    assert f"git -C {repo} status" in (exc.value.hint or "")


def test_a_repository_of_another_user_as_git_before_2_36_said_it(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The security releases of April 2022 (2.30.3 to 2.35.2), which distributions still ship.
    project = repo / "services" / "shop"
    project.mkdir(parents=True)
    old = tmp_path / "bin"
    _git_wrapper(
        old,
        f"echo \"fatal: unsafe repository ('{repo}' is owned by someone else)\" >&2\n"
        "echo 'To add an exception for this directory, call:' >&2\n"
        "exit 128",
    )
    monkeypatch.setenv("PATH", f"{old}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(PreconditionFailed) as exc:
        gitops.look(project)
    assert exc.value.message == (
        f"git refuses to work in {project}: the repository at {repo} is owned by another user"
    )
    assert exc.value.hint == f"git config --global --add safe.directory {repo}"


def test_tags_git_cannot_list_refuse_rather_than_read_as_none(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(repo, "tag", "v1.0.0")
    failing = tmp_path / "bin"
    # git -C ROOT for-each-ref ...: the tag listing fails, everything else works.
    _git_wrapper(
        failing,
        '[ "$3" = for-each-ref ] && { echo "fatal: bad object refs/tags/v0" >&2; exit 128; }',
    )
    monkeypatch.setenv("PATH", f"{failing}{os.pathsep}{os.environ['PATH']}")
    for probe in (lambda: gitops.look(repo), lambda: gitops.previous_version(repo, "1.1.0")):
        with pytest.raises(PreconditionFailed) as exc:
            probe()
        assert exc.value.message == (
            f"git could not list the tags in {repo}: fatal: bad object refs/tags/v0"
        )
        assert exc.value.exit_code == EXIT_PRECONDITION


def test_git_not_installed(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(PreconditionFailed) as exc:
        gitops.repo_root(repo)
    assert exc.value.message.startswith("git is not installed")
    result = gitops.push_tag(repo, "v1.0.0")
    assert not result.ok
    assert "git is not installed" in result.output_tail
    assert gitops.remote_has_tag(repo, "v1.0.0") is None
