"""The peers: Scribe and LTSS, Home Assistant custom components that are not on PyPI.

Their code is never part of this repository. The benchmark pins each one's newest
release (its commit, and the git tree id of its custom_components/<domain> folder) and
takes the code from a directory the user gives (scripts/bench --peers-dir, or
$HA_BENCH_PEERS) that holds each peer's repository exported at that commit:

    PEERS/scribe/   git --git-dir=SCRIBE.git archive <commit> | tar -x -C PEERS/scribe
    PEERS/ltss/     git --git-dir=LTSS.git archive <commit> | tar -x -C PEERS/ltss

The folder a run loads must be byte for byte the pinned one: its tree id is computed from
the files, as git would, and compared with the pin. Their declared requirements
(manifest.json) are pinned in requirements_test.txt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
import hashlib
import os
from pathlib import Path
import stat
from typing import Final

ENVIRONMENT: Final = "HA_BENCH_PEERS"
# Files git does not track that running the code makes next to it.
_UNTRACKED: Final = frozenset({"__pycache__"})


class PeerError(RuntimeError):
    """A peer's code is missing or is not the pinned release."""


@dataclass(frozen=True, slots=True)
class Peer:
    """A peer as a new user sets it up from its README: YAML with only the database URL."""

    name: str
    domain: str
    # Its repository on GitHub (owner/name), the newest release's tag and commit.
    repository: str
    release: str
    commit: str
    # The git tree id of custom_components/<domain> at that commit.
    tree: str
    # Where it writes one row per state change (a `time` column, timestamptz).
    table: str
    # SQL its README has the user run, as the database's superuser, in the new database
    # ({database} is its name).
    setup: tuple[str, ...]
    # The user its README creates for it, with its password; None: the superuser, as
    # the README says for the first start (it creates the extensions itself).
    user: tuple[str, str] | None
    # Whether it sets up through a config entry (Scribe imports its YAML into one).
    config_entry: bool

    def folder(self, peers_dir: Path) -> Path:
        """Return where its component is in a peers directory."""
        return peers_dir / self.domain / "custom_components" / self.domain

    def export_command(self, peers_dir: Path) -> str:
        """Say how to put the pinned release into a peers directory."""
        target = peers_dir / self.domain
        return (
            f"mkdir -p {target} && git --git-dir=<a clone of {self.repository}>"
            f" archive {self.commit} | tar -x -C {target}"
        )


SCRIBE: Final = Peer(
    name="Scribe",
    domain="scribe",
    repository="jonathan-gtd/scribe",
    release="v3.8.0",
    commit="0999c0504c96f6f8502e526e66b983099239494c",
    tree="709bf680a03d01afaa75dd7de1311eda179dbef4",
    table="states_raw",
    setup=(
        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'scribe')"
        " THEN CREATE USER scribe WITH PASSWORD 'password'; END IF; END$$",
        'GRANT ALL PRIVILEGES ON DATABASE "{database}" TO scribe',
        "CREATE EXTENSION IF NOT EXISTS timescaledb",
        "GRANT ALL ON SCHEMA public TO scribe",
    ),
    user=("scribe", "password"),
    config_entry=True,
)
LTSS: Final = Peer(
    name="LTSS",
    domain="ltss",
    repository="freol35241/ltss",
    release="v2.1.1",
    commit="4399db87327b943cc3c7b5de04ff8f8bcacf580b",
    tree="68f239dc6847190407b01664a66cbd4ec10eef19",
    table="ltss",
    setup=(),
    user=None,
    config_entry=False,
)
# By benchmark mode (ha_config.Mode).
PEERS: Final[Mapping[str, Peer]] = {"s": SCRIBE, "t": LTSS}


def _blob_id(data: bytes) -> bytes:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).digest()


def _tree_id(entries: Iterable[tuple[bytes, bytes, bytes]]) -> bytes:
    """Hash (mode, name, id) entries as a git tree; git orders a folder as name + /."""
    ordered = sorted(entries, key=lambda e: e[1] + b"/" if e[0] == b"40000" else e[1])
    body = b"".join(mode + b" " + name + b"\0" + oid for mode, name, oid in ordered)
    return hashlib.sha1(b"tree %d\0" % len(body) + body, usedforsecurity=False).digest()


def git_tree_id(folder: Path) -> str | None:
    """Return the id git gives `folder` as a tree (None if it holds no file)."""
    entries = []
    for path in folder.iterdir():
        name = os.fsencode(path.name)
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            entries.append((b"120000", name, _blob_id(os.fsencode(os.readlink(path)))))
        elif stat.S_ISDIR(mode):
            if path.name not in _UNTRACKED and (tree := git_tree_id(path)):
                entries.append((b"40000", name, bytes.fromhex(tree)))
        else:
            executable = mode & stat.S_IXUSR
            entries.append(
                (
                    b"100755" if executable else b"100644",
                    name,
                    _blob_id(path.read_bytes()),
                )
            )
    return _tree_id(entries).hex() if entries else None


def peers_dir_from(argument: Path | None) -> Path | None:
    """Return the peers directory from the command line, else from the environment."""
    if argument is not None:
        return argument
    value = os.environ.get(ENVIRONMENT)
    return Path(value) if value else None


def peer_folders(peers_dir: Path | None, modes: Iterable[str]) -> dict[str, Path]:
    """Return the pinned component folder of each peer among `modes`, checked.

    Raise PeerError naming what is missing, or what differs, and how to put it there.
    """
    wanted = {mode: PEERS[mode] for mode in modes if mode in PEERS}
    if not wanted:
        return {}
    if peers_dir is None:
        names = ", ".join(f"({mode}) {peer.name}" for mode, peer in wanted.items())
        msg = (
            f"modes {names} need the peers' code, which is not on PyPI: give a"
            f" directory with --peers-dir or ${ENVIRONMENT} that holds "
            + "; ".join(
                f"{peer.domain}/, {peer.repository} at {peer.release}"
                f" (commit {peer.commit})"
                for peer in wanted.values()
            )
        )
        raise PeerError(msg)
    folders = {}
    for mode, peer in wanted.items():
        folder = peer.folder(peers_dir)
        how = f"put it there with: {peer.export_command(peers_dir)}"
        if not (folder / "manifest.json").is_file():
            msg = (
                f"mode ({mode}) needs {peer.name} {peer.release}: {folder}/manifest.json"
                f" is missing; {how}"
            )
            raise PeerError(msg)
        if (tree := git_tree_id(folder)) != peer.tree:
            msg = (
                f"mode ({mode}): {folder} is not {peer.name} {peer.release} (git tree"
                f" {tree}, pinned {peer.tree} at commit {peer.commit}); {how}"
            )
            raise PeerError(msg)
        folders[mode] = folder.resolve()
    return folders
