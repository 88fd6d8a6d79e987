"""The fd-level building blocks of autow2s.safefs: openat2, path splitting, error wording, locked folders."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Callable

from autow2s.errors import AutoW2SError

DEFAULT_MAX_READ_BYTES = 20_000_000
MAX_DEPTH = 1024  # directory levels a walk descends (each level holds one file descriptor)
_SYS_OPENAT2 = 437  # the same number on every Linux architecture that has it (x86_64, aarch64, ...)
_RESOLVE_NO_MAGICLINKS, _RESOLVE_NO_SYMLINKS, _RESOLVE_BENEATH = 0x02, 0x04, 0x08
BASE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | BASE_FLAGS


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


openat2 = _Openat2()


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


def describe(error: OSError, shown: str) -> OSError | UnsafePathError:
    """A plain OSError for a missing path; an UnsafePathError that says why for a link in the way."""
    if error.errno in (errno.ELOOP, errno.EXDEV):
        return UnsafePathError(f"{shown}: a symbolic link is in the way; the host does not follow links in this "
                               "folder (remove the link, or use the real path)")
    if error.errno == errno.ENOTDIR:
        return UnsafePathError(f"{shown}: a part of this path is a symbolic link or a file, not a directory; the "
                               "host does not follow links in this folder")
    return OSError(error.errno, error.strerror, shown)


def file_kind(mode: int) -> str:
    for check, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symbolic link"),
                        (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "device"),
                        (stat.S_ISBLK, "device")):
        if check(mode):
            return name
    return "special file"


def make_writable(dir_fd: int) -> None:
    """A directory a job chmodded to 0 must be listable and writable before its entries can be removed."""
    info = os.fstat(dir_fd)
    if info.st_mode & 0o700 != 0o700:
        try:
            os.fchmod(dir_fd, (info.st_mode & 0o7777) | 0o700)
        except OSError:
            pass


def open_dir_writable(parent_fd: int, name: str) -> int | None:
    """Open a subdirectory (never a link) and give its owner rwx, or None when it is not a directory now.

    A mode-0 directory cannot be opened for reading by its (non-root) owner, so it is first opened
    with O_PATH, checked to be a directory, and chmodded through /proc/self/fd: that names exactly
    the inode opened, not a path a job could swap.
    """
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except PermissionError:
        try:
            handle = os.open(name, os.O_PATH | DIR_FLAGS, dir_fd=parent_fd)
        except OSError:
            return None
        try:
            info = os.fstat(handle)
            if not stat.S_ISDIR(info.st_mode):
                return None
            os.chmod(f"/proc/self/fd/{handle}", (info.st_mode & 0o7777) | 0o700)
            fd = os.open(".", DIR_FLAGS, dir_fd=handle)
        except OSError:
            return None
        finally:
            os.close(handle)
    except OSError:
        return None
    make_writable(fd)
    return fd


