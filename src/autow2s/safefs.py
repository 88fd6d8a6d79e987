"""Host-side access to trees that sandboxed code can write: the one way trusted code touches them.

Why: a job runs while the host reads and writes its workspace (and a verify job's folder), and it
can swap any file or directory there for a symlink, a FIFO or a hard-to-delete tree at any
moment, including between the host's check and its use. So every access here
- names a path *relative to a tree's root* (no absolute paths, no `..`),
- opens it relative to a directory file descriptor and never follows a symlink on any component
  (`openat2` with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS where the kernel
  has it; otherwise one `O_NOFOLLOW` open per component),
- opens only regular files and directories, with O_NONBLOCK, so a FIFO can neither block nor be read,
- caps what it reads,
- writes new content to a fresh file made with O_CREAT | O_EXCL and renames it into place
  (`renameat` replaces a planted symlink; it never writes through one),
- removes trees and changes modes through file descriptors only.

docs/sandbox.md lists every host-side site that uses it, and tests/test_host_writes.py attacks each.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from autow2s.errors import AutoW2SError

DEFAULT_MAX_READ_BYTES = 20_000_000
MAX_DEPTH = 1024  # directory levels a walk descends (each level holds one file descriptor)
_SYS_OPENAT2 = 437  # the same number on every Linux architecture that has it (x86_64, aarch64, ...)
_RESOLVE_NO_MAGICLINKS, _RESOLVE_NO_SYMLINKS, _RESOLVE_BENEATH = 0x02, 0x04, 0x08
_BASE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | _BASE_FLAGS


class UnsafePathError(AutoW2SError):
    """The host refused a path in a tree a job can write: a symlink, a FIFO, `..`, or too large."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _Openat2:
    """openat2(2) through libc's syscall(); `available` turns False for good after ENOSYS or EPERM."""

    def __init__(self) -> None:
        self.available = os.uname().sysname == "Linux"
        self._syscall: Callable[..., int] | None = None

    def __call__(self, dir_fd: int, path: str, flags: int, mode: int) -> int | None:
        """The new fd, or None when the kernel has no openat2 (the caller walks component by component)."""
        if not self.available:
            return None
        if self._syscall is None:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            self._syscall = libc.syscall
        creates = flags & os.O_CREAT or flags & os.O_TMPFILE == os.O_TMPFILE  # O_TMPFILE includes O_DIRECTORY
        mode = mode if creates else 0  # openat2 refuses a mode it would not use
        how = _OpenHow(flags, mode, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
        fd = self._syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dir_fd), ctypes.c_char_p(os.fsencode(path)),
                           ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code in (errno.ENOSYS, errno.EPERM):  # an old kernel, or a seccomp filter that forbids it
            self.available = False
            return None
        raise OSError(code, os.strerror(code), path)


_openat2 = _Openat2()


def split_relative(relative: str | os.PathLike[str]) -> tuple[str, ...]:
    """'a/b/./c' -> ('a', 'b', 'c'); '' and '.' -> (). Absolute paths and `..` are refused, not resolved."""
    text = os.fspath(relative)
    if "\0" in text:
        raise UnsafePathError(f"{text!r}: a path with a NUL byte")
    if text.startswith("/"):
        raise UnsafePathError(f"{text}: an absolute path; give a path relative to the folder")
    parts = tuple(part for part in text.split("/") if part not in ("", "."))
    if ".." in parts:
        raise UnsafePathError(f"{text}: `..` is not allowed; give a path inside the folder")
    return parts


def _describe(error: OSError, shown: str) -> OSError | UnsafePathError:
    """A plain OSError for a missing path; an UnsafePathError that says why for a link in the way."""
    if error.errno in (errno.ELOOP, errno.EXDEV):
        return UnsafePathError(f"{shown}: a symbolic link is in the way; the host does not follow links in this "
                               "folder (remove the link, or use the real path)")
    if error.errno == errno.ENOTDIR:
        return UnsafePathError(f"{shown}: a part of this path is a symbolic link or a file, not a directory; the "
                               "host does not follow links in this folder")
    return OSError(error.errno, error.strerror, shown)


def _file_kind(mode: int) -> str:
    for check, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symbolic link"),
                        (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "device"),
                        (stat.S_ISBLK, "device")):
        if check(mode):
            return name
    return "special file"


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
        return os.open(self.root, _DIR_FLAGS)

    def _open(self, parts: tuple[str, ...], flags: int, mode: int = 0o600, shown: str = "") -> int:
        """Open root/parts with no symlink followed anywhere; the caller closes the fd."""
        flags |= _BASE_FLAGS
        root = self._root_fd()
        try:
            if not parts:
                return os.dup(root) if flags & os.O_DIRECTORY else os.open(".", flags, mode, dir_fd=root)
            try:
                fd = _openat2(root, "/".join(parts), flags, mode)
                if fd is not None:
                    return fd
                current = root
                try:
                    for name in parts[:-1]:
                        following = os.open(name, _DIR_FLAGS, dir_fd=current)
                        if current != root:
                            os.close(current)
                        current = following
                    return os.open(parts[-1], flags, mode, dir_fd=current)
                finally:
                    if current != root:
                        os.close(current)
            except OSError as exc:
                raise _describe(exc, shown or "/".join(parts)) from None
        finally:
            os.close(root)

    def _dir_fd(self, parts: tuple[str, ...], *, create: bool = False, mode: int = 0o755) -> int:
        """A directory's fd; with create, missing directories on the way are made (never through a link)."""
        shown = "/".join(parts) or "."
        try:
            return self._open(parts, _DIR_FLAGS, shown=shown)
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
                    following = os.open(name, _DIR_FLAGS, dir_fd=current)
                except OSError as exc:
                    raise _describe(exc, "/".join(parts[:index + 1])) from None
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
        return None if info is None else _file_kind(info.st_mode)

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
                raise UnsafePathError(f"{shown}: a {_file_kind(info.st_mode)}, not a regular file; the host reads "
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
                        found.append((entry.name, _file_kind(entry.stat(follow_symlinks=False).st_mode)))
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
                    child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
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
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BASE_FLAGS, 0o600, dir_fd=parent)
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
            raise _describe(exc, "/".join(parts)) from None
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
                raise UnsafePathError(f"{'/'.join(parts)}: a {_file_kind(info.st_mode)}; the host changes modes "
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
                top = _open_dir_writable(parent_fd, parts[-1])
            finally:
                os.close(parent_fd)
        else:
            top = self._dir_fd(parts)
            _make_writable(top)
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
                    sub = _open_dir_writable(fd, child.name)
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


def _make_writable(dir_fd: int) -> None:
    """A directory a job chmodded to 0 must be listable and writable before its entries can be removed."""
    info = os.fstat(dir_fd)
    if info.st_mode & 0o700 != 0o700:
        try:
            os.fchmod(dir_fd, (info.st_mode & 0o7777) | 0o700)
        except OSError:
            pass


def _open_dir_writable(parent_fd: int, name: str) -> int | None:
    """Open a subdirectory (never a link) and give its owner rwx, or None when it is not a directory now.

    A mode-0 directory cannot be opened for reading by its (non-root) owner, so it is first opened
    with O_PATH, checked to be a directory, and chmodded through /proc/self/fd: that names exactly
    the inode opened, not a path a job could swap.
    """
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except PermissionError:
        try:
            handle = os.open(name, os.O_PATH | _DIR_FLAGS, dir_fd=parent_fd)
        except OSError:
            return None
        try:
            info = os.fstat(handle)
            if not stat.S_ISDIR(info.st_mode):
                return None
            os.chmod(f"/proc/self/fd/{handle}", (info.st_mode & 0o7777) | 0o700)
            fd = os.open(".", _DIR_FLAGS, dir_fd=handle)
        except OSError:
            return None
        finally:
            os.close(handle)
    except OSError:
        return None
    _make_writable(fd)
    return fd


def remove_job_tree(path: str | os.PathLike[str]) -> None:
    """Delete a whole folder a job could write (a verify job's workspace), safely; missing is fine."""
    path = Path(path)
    try:
        SafeTree(path.parent).remove_tree(path.name)
    except FileNotFoundError:
        pass
