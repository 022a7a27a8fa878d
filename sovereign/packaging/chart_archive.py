"""A Helm chart archive (`<name>-<version>.tgz`) laid out as `helm package` lays it out, byte-reproducible.

Same members as Helm's (helm pkg/chart/loader + chartutil.Save): only files, under `<name>/`,
`.helmignore` rules applied with Go's `filepath.Match` semantics, dotfiles under `templates/` ignored by
default; Chart.yaml, values.yaml and values.schema.json first, then templates, then every other file.
Unlike Helm, timestamps and owners are fixed and Chart.yaml is kept as written (Helm re-serializes it; the
parsed content is equal), so two runs give the same bytes. tests/packaging checks this against
helm-python-sdk's own `package`.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FIXED_MTIME = 0  # every timestamp in the archives: the same inputs give the same bytes
CHART_FILE = "Chart.yaml"
_HELM_ORDER = ("Chart.yaml", "values.yaml", "values.schema.json")
_DEFAULT_RULES = ("templates/.?*",)  # helm's ignore.AddDefaults


class ChartError(ValueError):
    """A chart directory that cannot be packaged."""


def _go_glob(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match as a regex: `*` and `?` never cross `/`, `[...]` classes, `\\` escapes."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ChartError(f".helmignore: unterminated [ in {pattern!r}")
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    negate: bool
    directories_only: bool
    basename_only: bool  # no `/` in the rule: Helm matches the file name alone

    def matches(self, relative: str) -> bool:
        return bool(self.pattern.match(relative.rsplit("/", 1)[-1] if self.basename_only else relative))


def parse_helmignore(lines: Iterable[str]) -> list[_Rule]:
    """helm pkg/ignore: one rule a line, `#` comments, `!` negates, a trailing `/` means directories only."""
    rules = []
    for raw in (*_DEFAULT_RULES, *lines):
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        if "**" in rule:
            raise ChartError(f".helmignore: Helm does not support ** ({rule!r})")
        negate = rule.startswith("!")
        rule = rule[1:] if negate else rule
        directories_only = rule.endswith("/")
        rule = rule.rstrip("/")
        basename_only = "/" not in rule
        rules.append(_Rule(_go_glob(rule.lstrip("/")), negate, directories_only, basename_only))
    return rules


def _ignored(rules: list[_Rule], relative: str, is_dir: bool) -> bool:
    for rule in rules:  # helm's Rules.Ignore, in order
        if rule.negate:
            if (rule.directories_only and not is_dir) or not rule.matches(relative):
                return True
            continue
        if rule.directories_only and not is_dir:
            continue
        if rule.matches(relative):
            return True
    return False


def chart_files(chart_dir: Path) -> list[str]:
    """The chart's files as Helm packages them: relative paths, in Helm's order."""
    helmignore = chart_dir / ".helmignore"
    rules = parse_helmignore(helmignore.read_text().splitlines() if helmignore.is_file() else [])
    found: list[str] = []

    def walk(directory: Path) -> None:
        for entry in sorted(directory.iterdir(), key=lambda p: p.name):
            relative = entry.relative_to(chart_dir).as_posix()
            if _ignored(rules, relative, entry.is_dir()):
                continue
            if entry.is_dir():
                walk(entry)
            elif entry.is_file():
                found.append(relative)
            else:
                raise ChartError(f"{relative}: not a regular file")

    walk(chart_dir)
    if CHART_FILE not in found:
        raise ChartError(f"{chart_dir} has no {CHART_FILE}")
    if any(f.startswith("charts/") for f in found):
        raise ChartError("subcharts (charts/) are not supported: the platform's chart has none")
    first = [f for f in _HELM_ORDER if f in found]
    templates = [f for f in found if f.startswith("templates/")]
    return first + templates + [f for f in found if f not in first and f not in templates]


def chart_metadata(chart_dir: Path) -> dict[str, Any]:
    metadata = yaml.safe_load((chart_dir / CHART_FILE).read_text())
    if not isinstance(metadata, dict) or not metadata.get("name") or not metadata.get("version"):
        raise ChartError(f"{chart_dir / CHART_FILE}: needs a name and a version")
    return metadata


def deterministic_tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def package_chart(chart_dir: Path) -> tuple[str, bytes]:
    """(`<name>-<version>.tgz`, its bytes): the chart as `helm package` would archive it."""
    metadata = chart_metadata(chart_dir)
    name = str(metadata["name"])
    buffer = io.BytesIO()
    # No file name and a fixed time in the gzip header either.
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=FIXED_MTIME) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for relative in chart_files(chart_dir):
            data = (chart_dir / relative).read_bytes()
            archive.addfile(deterministic_tar_info(f"{name}/{relative}", len(data)), io.BytesIO(data))
    return f"{name}-{metadata['version']}.tgz", buffer.getvalue()


def read_chart_archive(data: bytes) -> dict[str, bytes]:
    """Member name → content of a chart archive; raises ChartError when it is not one."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            files = {}
            for member in archive.getmembers():
                if member.isfile():
                    extracted = archive.extractfile(member)
                    files[member.name] = extracted.read() if extracted else b""
            return files
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ChartError(f"not a gzip'd tar: {error}") from None
