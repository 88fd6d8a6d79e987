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

from autow2s.safefs.primitives import DEFAULT_MAX_READ_BYTES, MAX_DEPTH, UnsafePathError, split_relative
from autow2s.safefs.tree import FileEntry, SafeTree, remove_job_tree

__all__ = ["DEFAULT_MAX_READ_BYTES", "MAX_DEPTH", "FileEntry", "SafeTree", "UnsafePathError", "remove_job_tree",
           "split_relative"]
