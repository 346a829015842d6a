"""Rules that need the whole runbook: staging exists, named checks exist, hosts are allowed,
paths stay inside the project, ids and versions are unique, shell steps say so.

The models check one field at a time; these run after them, on a valid `Runbook`, and give
every problem found, each located in the file by the caller's `at`.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from drillbook import model, placeholders
from drillbook.errors import Problem
from drillbook.model import Change, Runbook

#: Makes the problem at a data path: (path, message, hint) -> Problem, located in the file.
At = Callable[..., Problem]


def _closest(word: str, choices: list[str]) -> str | None:
    from drillbook.explain import closest  # only when something is wrong

    return closest(word, choices)


def problems(runbook: Runbook, root: Path, at: At, source: str | None = None) -> Iterator[Problem]:
    """Every problem across the fields of `runbook`, a project's runbook under `root`.

    `source`, the runbook's text when known, lets a runbook with no brace that could be a
    placeholder written wrong skip the walk that looks for them.
    """
    typos = source is None or placeholders.suspected(source)
    envs = runbook.environments
    if "staging" not in envs:
        known = ", ".join(envs) or "none"
        yield at(
            ("environments",),
            f"expected a `staging` environment, got only {known}",
            "every runbook has staging: releases and rehearsals deploy to staging first",
        )
    hosts_by_env: dict[str, set[str]] = {}
    for env_name, env in envs.items():
        problem = _url_problem(env.url, ("environments", env_name, "url"), at)
        if problem:
            yield problem
            hosts_by_env[env_name] = set()
            continue
        # As the checks compare them (`checks.CheckRunner`): the url's own host is always
        # allowed, and `[::1]`, `LOCALHOST.` and `localhost` name one host each.
        own = model.host_key(urlsplit(env.url).hostname or "")
        hosts_by_env[env_name] = {own, *(model.host_key(h) for h in env.allow_hosts or [])}
        if env.config is not None:
            yield from _path_problems(env.config, ("environments", env_name, "config"), root, at)
        if typos:
            yield from placeholders.environment_problems(env, ("environments", env_name), at)
    if runbook.config and runbook.config.same_keys_as:
        other = runbook.config.same_keys_as
        if other not in envs:
            close = _closest(other, list(envs))
            yield at(
                ("config", "same_keys_as"),
                f"expected the name of an environment ({', '.join(envs)}), got {other!r}",
                f"did you mean `{close}`?" if close else None,
            )
    for i, log in enumerate(runbook.logs):
        for env_name in envs:
            where = log.where.replace("{env}", env_name)
            problems = list(_path_problems(where, ("logs", i, "where"), root, at))
            if problems:
                yield problems[0]
                break
    for step_path, step in _steps(runbook):
        yield from _shell_problems(step, step_path, at)
        if typos:
            yield from placeholders.step_problems(step, step_path, at)
        if step.cwd is not None:
            yield from _path_problems(step.cwd, (*step_path, "cwd"), root, at)
    all_hosts = set().union(*hosts_by_env.values()) if hosts_by_env else set()
    for check_name, check in runbook.checks.items():
        yield from _check_problems(check, ("checks", check_name), all_hosts, at, typos)
    seen_versions: dict[str, int] = {}
    for r, release in enumerate(runbook.releases):
        if release.version in seen_versions:
            yield at(
                ("releases", r, "version"),
                f"version {release.version} is declared twice "
                f"(also releases[{seen_versions[release.version]}])",
                "each version appears once",
            )
        seen_versions.setdefault(release.version, r)
        seen_ids: dict[str, int] = {}
        for c, change in enumerate(release.changes):
            base = ("releases", r, "changes", c)
            if change.id in seen_ids:
                yield at(
                    (*base, "id"),
                    f"change id {change.id!r} is used twice in release {release.version} "
                    f"(also changes[{seen_ids[change.id]}])",
                )
            seen_ids.setdefault(change.id, c)
            yield from _change_problems(runbook, change, base, all_hosts, at, typos)


def _steps(runbook: Runbook) -> Iterator[tuple[tuple[Any, ...], model.Step]]:
    if runbook.deploy is not None:
        yield ("deploy",), runbook.deploy
    for gate in ("lint", "unit"):
        step = getattr(runbook.gates, gate)
        if step is not None and "gates" in runbook.model_fields_set:
            yield ("gates", gate), step
    for r, release in enumerate(runbook.releases):
        for c, change in enumerate(release.changes):
            for s, step in enumerate(change.rollback.steps):
                yield ("releases", r, "changes", c, "rollback", "steps", s), step


def _shell_problems(
    step: model.Step | model.RunCheck, path: tuple[Any, ...], at: Any
) -> Iterator[Problem]:
    if step.shell and isinstance(step.run, str):
        for name in model.PLACEHOLDERS:
            if "{" + name + "}" in step.run:
                yield at(
                    (*path, "run"),
                    f"placeholder {{{name}}} inside a shell command is never filled in",
                    f"use ${'DRILLBOOK_' + name.upper()} (values reach shell commands as "
                    "environment variables, never inside the command text)",
                )
                return


def _change_problems(
    runbook: Runbook,
    change: Change,
    base: tuple[Any, ...],
    hosts: set[str],
    at: Any,
    typos: bool = True,
) -> Iterator[Problem]:
    base_version = runbook.releases[base[1]].version
    for section, refs in (
        ("expected", change.expected.checks),
        ("rollback", change.rollback.checks),
    ):
        for k, ref in enumerate(refs):
            path = (*base, section, "checks", k)
            if isinstance(ref, str):
                if ref not in runbook.checks:
                    close = _closest(ref, list(runbook.checks))
                    known = ", ".join(runbook.checks) or "none: the runbook has no `checks:`"
                    yield at(
                        path,
                        f"expected the name of a check under `checks:`, got {ref!r} (in change "
                        f"{change.id!r} of release {base_version}); known checks: {known}",
                        f"did you mean `{close}`?" if close else None,
                    )
            else:
                yield from _check_problems(ref, path, hosts, at, typos)


def _check_problems(
    check: model.HttpCheck | model.RunCheck,
    path: tuple[Any, ...],
    hosts: set[str],
    at: Any,
    typos: bool = True,
) -> Iterator[Problem]:
    if typos:
        yield from placeholders.check_problems(check, path, at)
    if isinstance(check, model.RunCheck):
        yield from _shell_problems(check, path, at)
        return
    key = check.method.lower()
    target = check.target
    if target.startswith("/") and not target.startswith("//"):
        return
    if target.startswith("//"):
        yield at(
            (*path, key),
            f"expected a path starting with one / or an http(s) URL, got {mask_url(target)!r}: "
            "a URL without its scheme",
            "write the path under the environment's url (/health), or the URL with http(s)://",
        )
        return
    if "://" not in target:
        hint = f"write /{mask_url(target)}" if not target.startswith(("{", "http")) else None
        head, _, rest = target.partition("/")
        if _HOST_PORT.match(head):
            # `localhost:8000/health` is a URL without its scheme, not a path.
            hint = f"write the path under the environment's url (/{rest}), or http://{target}"
        yield at(
            (*path, key),
            f"expected a path starting with / or an http(s) URL, got {mask_url(target)!r}",
            hint,
        )
        return
    problem = _url_problem(target, (*path, key), at)
    if problem:
        yield problem
        return
    host = model.host_key(urlsplit(target).hostname or "")
    if host not in hosts:
        allowed = ", ".join(sorted(hosts)) or "none"
        yield at(
            (*path, key),
            f"host {host!r} is not on any environment's allow_hosts (allowed: {allowed})",
            "add it to the environment's allow_hosts if checks may reach it",
        )


def mask_url(url: str) -> str:
    """A URL with the password of its user part masked (a lone user part is masked whole)."""
    if "//" not in url:
        # No scheme, so no netloc to parse: `user:pass@host:8000`. What comes before an `@`
        # ahead of the first / is a user part all the same.
        head, slash, rest = url.partition("/")
        if "@" in head:
            return "***@" + head.rpartition("@")[2] + slash + rest
        return url
    try:
        parts = urlsplit(url)
        if parts.password is None and parts.username is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = f"{parts.username or ''}:***@" if parts.password is not None else "***@"
        return parts._replace(netloc=user + host).geturl()
    except ValueError:  # not even a URL: mask whatever sits between // and the last @
        return _USERINFO.sub(r"\1***@", url)


_USERINFO = re.compile(r"(//)[^/?#]*@")
_HOST_PORT = re.compile(r"^[A-Za-z0-9.-]+:\d+$")


def _url_problem(url: str, path: tuple[Any, ...], at: Any) -> Problem | None:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a bad port
    except ValueError as exc:
        return at(path, f"expected a URL, got {mask_url(url)!r} ({exc})")
    if "://" not in url and "@" not in url and parts.scheme not in ("http", "https"):
        # `localhost:8000` reads as the scheme `localhost`; it is a URL without its scheme.
        return at(
            path,
            f"expected an http or https URL, got {mask_url(url)!r}, which has no scheme",
            f"write http://{mask_url(url).removeprefix('//')} (or https://)",
        )
    if parts.scheme not in ("http", "https"):
        return at(
            path,
            f"expected an http or https URL, got the scheme {parts.scheme or 'none'!r} in "
            f"{mask_url(url)!r}",
        )
    if parts.username is not None or parts.password is not None:
        return at(
            path,
            f"credentials inside a URL are not allowed, got {mask_url(url)!r}",
            "pass credentials as environment variables, never in the runbook",
        )
    if not parts.hostname:
        return at(path, f"expected a URL with a host, got {mask_url(url)!r}")
    return None


def _path_problems(value: str, path: tuple[Any, ...], root: Path, at: Any) -> Iterator[Problem]:
    """Paths must stay inside the project, symlinks included."""
    outside = _outside(str(root), value)
    if outside is None:
        return
    resolved, real_root = outside
    if resolved.startswith("cannot"):
        yield at(path, f"{resolved} {value!r}")
        return
    yield at(
        path,
        f"expected a path inside the project, got {value!r}, which resolves to "
        f"{resolved}, outside the project {real_root}",
        "a symlink may lead out; paths are relative to the folder that holds runbooks/",
    )


@functools.lru_cache(maxsize=4096)
def _outside(root: str, value: str) -> tuple[str, str] | None:
    """Where `value` really leads and the real root, when it leads out of `root`; else None.

    Cached: a `check` of many runbooks of one project resolves the same few paths again and
    again, and each resolution is one `lstat` per part of the path.
    """
    try:
        real_root = os.path.realpath(root)
        resolved = os.path.realpath(Path(real_root, value))
    except (OSError, ValueError) as exc:
        return f"cannot resolve the path ({exc}):", root
    if resolved == real_root or resolved.startswith(real_root.rstrip(os.sep) + os.sep):
        return None
    return resolved, real_root
