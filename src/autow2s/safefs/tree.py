"""SafeTree: every host-side read, write, walk and removal inside a tree a job can write (see autow2s.safefs)."""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from autow2s.safefs.primitives import (
    BASE_FLAGS,
    DEFAULT_MAX_READ_BYTES,
    DIR_FLAGS,
    MAX_DEPTH,
    UnsafePathError,
    describe,
    file_kind,
    make_writable,
    open_dir_writable,
    openat2,
    split_relative,
)


@dataclass(frozen=True)
class FileEntry:
    """A regular file found by `SafeTree.files`: its path relative to the walk's start, and its lstat."""

    path: str
    info: os.stat_result


class SafeTree:
    """A directory on the host whose contents an untrusted job may change at any time.

    The root itself is the host's (a workspace, a job folder); everything below it is treated as hostile.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # -- opening ---------------------------------------------------------------------------
    def _root_fd(self) -> int:
        return os.open(self.root, DIR_FLAGS)

    def _open(self, parts: tuple[str, ...], flags: int, mode: int = 0o600, shown: str = "") -> int:
        """Open root/parts with no symlink followed anywhere; the caller closes the fd."""
        flags |= BASE_FLAGS
        root = self._root_fd()
        try:
            if not parts:
                return os.dup(root) if flags & os.O_DIRECTORY else os.open(".", flags, mode, dir_fd=root)
            try:
                fd = openat2(root, "/".join(parts), flags, mode)
                if fd is not None:
                    return fd
                current = root
                try:
                    for name in parts[:-1]:
                        following = os.open(name, DIR_FLAGS, dir_fd=current)
                        if current != root:
                            os.close(current)
                        current = following
                    return os.open(parts[-1], flags, mode, dir_fd=current)
                finally:
                    if current != root:
                        os.close(current)
            except OSError as exc:
                raise describe(exc, shown or "/".join(parts)) from None
        finally:
            os.close(root)

    def _dir_fd(self, parts: tuple[str, ...], *, create: bool = False, mode: int = 0o755) -> int:
        """A directory's fd; with create, missing directories on the way are made (never through a link)."""
        shown = "/".join(parts) or "."
        try:
            return self._open(parts, DIR_FLAGS, shown=shown)
        except FileNotFoundError:
            if not create:
                raise
        current = self._root_fd()
        try:
            for index, name in enumerate(parts):
                try:
                    os.mkdir(name, mode, dir_fd=current)
                except FileExistsError:
                    pass
                try:
                    following = os.open(name, DIR_FLAGS, dir_fd=current)
                except OSError as exc:
                    raise describe(exc, "/".join(parts[:index + 1])) from None
                os.close(current)
                current = following
            result, current = current, -1
            return result
        finally:
            if current >= 0:
                os.close(current)

    # -- reading ---------------------------------------------------------------------------
    def lstat(self, relative: str | os.PathLike[str]) -> os.stat_result | None:
        """The entry's own metadata (a link is a link), or None when it is missing or its parent is not a dir."""
        parts = split_relative(relative)
        if not parts:
            return os.lstat(self.root)
        try:
            parent = self._dir_fd(parts[:-1])
        except (OSError, UnsafePathError):
            return None
        try:
            return os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except OSError:
            return None
        finally:
            os.close(parent)

    def kind(self, relative: str | os.PathLike[str]) -> str | None:
        """'file', 'directory', 'symbolic link', 'FIFO', ... or None when nothing is there."""
        info = self.lstat(relative)
        return None if info is None else file_kind(info.st_mode)

    def is_file(self, relative: str | os.PathLike[str]) -> bool:
        return self.kind(relative) == "file"

    def is_dir(self, relative: str | os.PathLike[str]) -> bool:
        return self.kind(relative) == "directory"

    def read_bytes(self, relative: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_READ_BYTES) -> bytes:
        """A regular file's bytes. A FIFO, socket or device is refused without blocking; so is a file over max_bytes."""
        parts = split_relative(relative)
        shown = "/".join(parts) or "."
        fd = self._open(parts, os.O_RDONLY | os.O_NONBLOCK, shown=shown)
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", shown)
            if not stat.S_ISREG(info.st_mode):
                raise UnsafePathError(f"{shown}: a {file_kind(info.st_mode)}, not a regular file; the host reads "
                                      "only regular files")
            if info.st_size > max_bytes:
                raise UnsafePathError(f"{shown} is {info.st_size:,} bytes, over the {max_bytes:,}-byte limit for "
                                      "reading it whole")
            chunks, left = [], max_bytes + 1
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            data = b"".join(chunks)
            if len(data) > max_bytes:
                raise UnsafePathError(f"{shown} grew past the {max_bytes:,}-byte limit while it was read")
            return data
        finally:
            os.close(fd)

    def read_text(self, relative: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_READ_BYTES,
                  errors: str = "replace") -> str:
        return self.read_bytes(relative, max_bytes).decode("utf-8", errors=errors)

    def list_dir(self, relative: str | os.PathLike[str] = ".") -> list[tuple[str, str]]:
        """(name, kind) of each entry of a directory, sorted; links are reported as links, not followed."""
        fd = self._dir_fd(split_relative(relative))
        try:
            with os.scandir(fd) as entries:
                found = []
                for entry in entries:
                    try:
                        found.append((entry.name, file_kind(entry.stat(follow_symlinks=False).st_mode)))
                    except OSError:
                        continue
            return sorted(found)
        finally:
            os.close(fd)

    def files(self, relative: str | os.PathLike[str] = ".", *, skip_dir: Callable[[str], bool] = lambda name: False,
              max_entries: int | None = None) -> list[FileEntry]:
        """Every regular file below a directory (paths relative to it), never descending through a link.

        skip_dir(name) leaves out directories by name; max_entries stops the walk early (a job can make
        millions of files). Deeper than MAX_DEPTH levels is not descended.
        """
        found: list[FileEntry] = []
        for _, rel_dir, name, info in self._walk(split_relative(relative), skip_dir):
            if stat.S_ISREG(info.st_mode):
                found.append(FileEntry(f"{rel_dir}/{name}" if rel_dir else name, info))
                if max_entries is not None and len(found) >= max_entries:
                    break
        return found

    def _walk(self, start: tuple[str, ...], skip_dir: Callable[[str], bool] = lambda name: False
              ) -> Iterator[tuple[int, str, str, os.stat_result]]:
        """(dir fd, dir path relative to start, name, lstat) of every entry, depth first, without recursion.

        Each directory is opened with O_NOFOLLOW | O_DIRECTORY from its parent's fd, so swapping a
        directory for a link mid-walk ends that branch (ELOOP) instead of leaving the tree.
        """
        top = self._dir_fd(start)
        stack: list[tuple[int, str, Iterator[os.DirEntry[str]]]] = []
        try:
            stack.append((top, "", iter(list(os.scandir(top)))))
            while stack:
                fd, rel_dir, entries = stack[-1]
                entry = next(entries, None)
                if entry is None:
                    stack.pop()
                    os.close(fd)
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                yield fd, rel_dir, entry.name, info
                if not stat.S_ISDIR(info.st_mode) or skip_dir(entry.name) or len(stack) >= MAX_DEPTH:
                    continue
                try:
                    child = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue  # gone, or swapped for a link or a file since it was listed
                try:
                    listing = list(os.scandir(child))
                except OSError:
                    os.close(child)
                    continue
                stack.append((child, f"{rel_dir}/{entry.name}" if rel_dir else entry.name, iter(listing)))
        finally:
            for fd, _, _ in stack:
                os.close(fd)

    def walk_entries(self, relative: str | os.PathLike[str] = "."
                     ) -> Iterator[tuple[int, str, str, os.stat_result]]:
        """Every entry below a directory as (parent dir fd, parent path, name, lstat), for callers that act on
        entries through the fd (chown, size). The fd is valid only until the next item."""
        return self._walk(split_relative(relative))

    def disk_bytes(self, relative: str | os.PathLike[str] = ".") -> int:
        """Allocated bytes of the tree (the directory itself excluded), links not followed."""
        try:
            return sum(info.st_blocks * 512 for _, _, _, info in self._walk(split_relative(relative)))
        except (OSError, UnsafePathError):
            return 0

    # -- writing ---------------------------------------------------------------------------
    def makedirs(self, relative: str | os.PathLike[str], mode: int = 0o755) -> None:
        os.close(self._dir_fd(split_relative(relative), create=True, mode=mode))

    def write_bytes(self, relative: str | os.PathLike[str], data: bytes, *, mode: int = 0o644,
                    exclusive: bool = False, make_parents: bool = True) -> None:
        """Write a file: a new one made with O_EXCL (exclusive), or a temporary file renamed over the old entry.

        Whatever was at the path (a link, a FIFO, a file) is replaced, never written through.
        exclusive: fail with FileExistsError if anything is there already.
        """
        parts = split_relative(relative)
        if not parts:
            raise UnsafePathError("a file name is needed")
        parent = self._dir_fd(parts[:-1], create=make_parents)
        name = parts[-1]
        temporary = name if exclusive else f".{name[:64]}.autow2s-{secrets.token_hex(6)}"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | BASE_FLAGS, 0o600, dir_fd=parent)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            if not exclusive:
                try:
                    os.replace(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
                except OSError:
                    os.unlink(temporary, dir_fd=parent)
                    raise
        except OSError as exc:
            if isinstance(exc, FileExistsError) and exclusive:
                raise
            raise describe(exc, "/".join(parts)) from None
        finally:
            os.close(parent)

    def write_text(self, relative: str | os.PathLike[str], text: str, **options: bool | int) -> None:
        self.write_bytes(relative, text.encode("utf-8"), **options)  # type: ignore[arg-type]

    def chmod(self, relative: str | os.PathLike[str], mode: int) -> None:
        """Change a regular file's or a directory's mode through its fd; links and special files are refused."""
        parts = split_relative(relative)
        fd = self._open(parts, os.O_RDONLY | os.O_NONBLOCK)
        try:
            info = os.fstat(fd)
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise UnsafePathError(f"{'/'.join(parts)}: a {file_kind(info.st_mode)}; the host changes modes "
                                      "only of files and directories")
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def unlink(self, relative: str | os.PathLike[str], *, missing_ok: bool = True) -> None:
        """Remove one entry that is not a directory (a link itself, never its target)."""
        parts = split_relative(relative)
        parent = self._dir_fd(parts[:-1])
        try:
            os.unlink(parts[-1], dir_fd=parent)
        except FileNotFoundError:
            if not missing_ok:
                raise
        finally:
            os.close(parent)

    def remove_tree(self, relative: str | os.PathLike[str] = ".", *, keep_top: bool = False) -> None:
        """Delete a tree (or only its contents with keep_top), without following a link and without recursion.

        A directory a job made unwritable is made writable again through its own fd first
        (`tempfile.TemporaryDirectory`'s clean-up chmods by path, following links: CVE-2023-6597).
        """
        parts = split_relative(relative)
        if not parts and not keep_top:
            raise UnsafePathError("remove_tree of the root itself: pass keep_top=True to empty it")
        if parts:
            info = self.lstat(relative)
            if info is None:
                return
            if not stat.S_ISDIR(info.st_mode):
                self.unlink(relative)
                return
        if parts:
            parent_fd = self._dir_fd(parts[:-1])
            try:
                top = open_dir_writable(parent_fd, parts[-1])
            finally:
                os.close(parent_fd)
        else:
            top = self._dir_fd(parts)
            make_writable(top)
        if top is None:
            raise UnsafePathError(f"{'/'.join(parts)}: could not be opened as a directory to remove it")
        stack = [(top, -1, "")]  # (dir fd, parent fd, name in parent)
        try:
            while stack:
                fd, parent, name = stack[-1]
                descended = False
                with os.scandir(fd) as entries:
                    children = list(entries)
                for child in children:
                    try:
                        is_dir = child.is_dir(follow_symlinks=False)
                    except OSError:
                        continue
                    if not is_dir:
                        try:
                            os.unlink(child.name, dir_fd=fd)
                        except FileNotFoundError:
                            pass
                        continue
                    if len(stack) >= MAX_DEPTH:
                        raise UnsafePathError(f"{'/'.join(parts) or '.'}: nested deeper than {MAX_DEPTH} levels; "
                                              "not removed")
                    sub = open_dir_writable(fd, child.name)
                    if sub is None:
                        continue  # swapped for a link or a file since listed: the next pass unlinks it
                    stack.append((sub, fd, child.name))
                    descended = True
                    break
                if descended:
                    continue
                stack.pop()
                os.close(fd)
                if parent >= 0:
                    try:
                        os.rmdir(name, dir_fd=parent)
                    except FileNotFoundError:
                        pass
        finally:
            for fd, _, _ in stack:
                os.close(fd)
        if parts and not keep_top:
            parent_fd = self._dir_fd(parts[:-1])
            try:
                os.rmdir(parts[-1], dir_fd=parent_fd)
            except FileNotFoundError:
                pass
            finally:
                os.close(parent_fd)


def remove_job_tree(path: str | os.PathLike[str]) -> None:
    """Delete a whole folder a job could write (a verify job's workspace), safely; missing is fine."""
    path = Path(path)
    try:
        SafeTree(path.parent).remove_tree(path.name)
    except FileNotFoundError:
        pass
