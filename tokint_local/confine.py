"""Kernel confinement for model-written code (what ``tokint eval``'s code checker runs).

A :class:`Sandbox` is built in the parent (Landlock ruleset, seccomp program, limits) and its
``enter`` runs in the child between fork and exec (subprocess's ``preexec_fn``), so the interpreter
and everything it starts are confined by the kernel, whatever Python or ctypes trick the code tries:

- files, with Landlock (Linux >= 5.13, the ``landlockpy`` bindings): read and execute only the
  interpreter's installation and the system's program folders (/usr, /lib, /bin ...), read and
  write only the check's own folder; nothing else (home folders, /etc, /proc, /tmp, /var ...).
  Landlock also refuses TCP bind/connect (ABI >= 4) and keeps signals and abstract unix sockets
  inside the sandbox (ABI >= 6). Without Landlock: a private mount namespace (in a user namespace
  when not root) whose root is an empty tmpfs holding those folders read-only and the check's
  folder read-write.
- network, with seccomp (the ``seccompy`` bindings): ``socket()`` fails for every address
  family; so do io_uring (which opens sockets and files behind seccomp's back), new user
  namespaces, ptrace, open_by_handle_at, setsid/setpgid (every process stays in the check's
  process group, which is killed when the check ends) and a few kernel interfaces no check needs.
- resources: CPU time, address space, file size and process count (RLIMIT_NPROC, counted per
  real uid across the machine, so the limit is that uid's current count plus ``Limits.processes``).
- identity: as root the code runs as ``nobody``: root ignores RLIMIT_NPROC and holds capabilities
  Landlock does not cover (kernel modules, raw I/O, reboot). Where the interpreter is not
  readable by others (a pyenv under /root), nobody keeps CAP_DAC_READ_SEARCH to start it (Landlock
  still decides what it reads; in the namespaces fallback it needs none).
"""
from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import resource
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import landlockpy
import seccompy
from landlockpy import AccessFS, Ruleset, Scope
from seccompy import Action, ArgCmp, CmpOp, Filter

NOBODY = 65534
FILES_MODES = ("landlock", "namespaces", "none")
# System folders an interpreter and its extension modules load from (symlinks to /usr on most systems).
SYSTEM_FOLDERS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime")
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")

_READ_FILE = AccessFS.READ_FILE | AccessFS.EXECUTE
_READ_TREE = _READ_FILE | AccessFS.READ_DIR
# Everything in the check's folder but device nodes (root could make one for a raw disk) and device ioctls.
_WORK_TREE = landlockpy.fs_for_abi(landlockpy.flags.LATEST_ABI) & ~(
    AccessFS.MAKE_CHAR | AccessFS.MAKE_BLOCK | AccessFS.IOCTL_DEV)
_DEVICE = AccessFS.READ_FILE | AccessFS.WRITE_FILE | AccessFS.TRUNCATE

# Denied with EPERM whatever their arguments.
DENIED_SYSCALLS = (
    "socket",  # the network: every address family, unix sockets included (socketpair stays allowed)
    "io_uring_setup", "io_uring_enter", "io_uring_register",  # io_uring's ops are not seen by seccomp
    "unshare", "setns",  # a new user namespace hands out capabilities and kernel attack surface
    "ptrace", "process_vm_readv", "process_vm_writev",  # other processes' memory
    "open_by_handle_at",  # opens files by handle, around path checks
    "setsid", "setpgid",  # so the check's process group holds every process it starts
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
)
_CLONE_NEWUSER = 0x10000000
_X32_SYSCALL_BIT = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MS_NOATIME, _MS_NODIRATIME, _MS_RELATIME = 1024, 2048, 1 << 21
_MNT_DETACH = 2
_PR_SET_KEEPCAPS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE = 8, 47, 2
_CAP_DAC_READ_SEARCH = 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


@dataclass(frozen=True)
class Limits:
    seconds: float
    memory_bytes: int
    file_bytes: int
    processes: int  # processes and threads the check may have at once


@dataclass(frozen=True)
class Support:
    """What this kernel and account offer for confining code."""
    landlock_abi: int  # 0: no Landlock
    seccomp: bool
    namespaces: Optional[bool]  # a private mount namespace can be made; None: not tried, Landlock is there
    root: bool
    kernel: str

    @property
    def files(self) -> str:
        """How file access is confined: one of FILES_MODES."""
        return "landlock" if self.landlock_abi else "namespaces" if self.namespaces else "none"


@functools.lru_cache(maxsize=None)
def support() -> Support:
    root = os.geteuid() == 0
    try:
        abi = landlockpy.abi_version()
    except OSError:
        abi = 0
    try:
        filters = seccompy.supported()
        seccompy.syscalls.audit_arch()  # seccompy knows x86_64 and aarch64 only
    except OSError:  # seccompy's UnsupportedError included
        filters = False
    return Support(abi, filters, None if abi else namespaces_work(), root, platform.release())


@functools.lru_cache(maxsize=None)
def namespaces_work() -> bool:
    """Whether a private mount namespace can be made here (tried in a child, which then exits)."""
    root = os.geteuid() == 0
    if not sys.platform.startswith("linux"):
        return False
    pid = os.fork()
    if pid == 0:
        flags = _CLONE_NEWNS if root else _CLONE_NEWNS | _CLONE_NEWUSER
        os._exit(0 if _libc.unshare(flags) == 0 else 1)
    return os.waitpid(pid, 0)[1] == 0


def shortfalls(s: Support) -> list[str]:
    """What is missing from full confinement on this machine, each as a sentence for a person."""
    notes = []
    if s.files == "namespaces":
        notes.append(f"Landlock is not available (Linux {s.kernel}); model-written code sees a private mount "
                     "namespace holding only the interpreter, the system folders (read-only) and its own folder"
                     + ("" if s.root else ", and can signal your other processes"))
    elif s.files == "none" and s.root:
        notes.append(f"neither Landlock nor namespaces are available (Linux {s.kernel}); model-written code runs "
                     "as nobody, confined only by file permissions (and reads any file if your interpreter "
                     "is not readable by others)")
    elif s.files == "none":
        notes.append(f"neither Landlock nor namespaces are available (Linux {s.kernel}); model-written code can "
                     "read and write whatever your account can")
    if not s.seccomp:
        net = "TCP only (Landlock)" if s.landlock_abi >= 4 else "only by a patch of Python's socket module"
        notes.append(f"seccomp is not available here; model-written code's network is blocked {net}")
    if 0 < s.landlock_abi < 6 and not s.root:
        notes.append(f"Landlock ABI {s.landlock_abi} does not scope signals (6 does, Linux 6.12): "
                     "model-written code can signal your other processes")
    return notes


def interpreter() -> str:
    """The real interpreter file behind sys.executable (a venv's is a symlink; -I -S ignores the venv)."""
    return os.path.realpath(sys.executable)


def readable_paths(exe: str) -> list[str]:
    """What a check may read and execute: the interpreter's installation and the system's folders."""
    candidates = [*SYSTEM_FOLDERS, *SYSTEM_FILES, os.path.realpath(sys.base_prefix),
                  os.path.realpath(sys.base_exec_prefix), exe]
    for folder in (os.path.dirname(exe), os.path.dirname(os.path.dirname(exe))):
        candidates.append(os.path.join(folder, "pyvenv.cfg"))  # a venv made with --copies reads it
    kept: list[str] = []
    for p in sorted({c for c in candidates if os.path.lexists(c)}, key=len):
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    return kept


def _others_can_read(path: str) -> bool:
    """Whether an account with no relation to the owner can reach and read ``path`` (mode bits only)."""
    p = Path(path)
    for parent in [*reversed(p.parents), p]:
        try:
            mode = os.stat(parent).st_mode
        except OSError:
            return False
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return bool(os.stat(p).st_mode & stat.S_IROTH)


def _tasks_of(uid: int) -> int:
    """Processes and threads of ``uid`` (what RLIMIT_NPROC counts, by real uid; /proc's owner is the
    effective one, which differs only for set-uid programs: close enough for a headroom)."""
    if not os.path.isdir("/proc"):
        return 0
    count = 0
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                count += os.stat(f"/proc/{entry.name}/task").st_nlink - 2  # one subfolder per thread
        except OSError:  # it ended meanwhile
            continue
    return count


@functools.lru_cache(maxsize=None)
def _seccomp_filter() -> Filter:
    f = Filter(default=Action.ALLOW)
    x32 = platform.machine().lower() in ("x86_64", "amd64")
    for name in DENIED_SYSCALLS:
        nr = seccompy.syscalls.syscall_nr(name)
        for number in (nr, nr | _X32_SYSCALL_BIT) if x32 else (nr,):
            f.errno(number, errno.EPERM)
    new_user = [ArgCmp(0, CmpOp.MASKED_EQ, _CLONE_NEWUSER, mask=_CLONE_NEWUSER)]
    clone = seccompy.syscalls.syscall_nr("clone")
    for number in (clone, clone | _X32_SYSCALL_BIT) if x32 else (clone,):
        f.errno(number, errno.EPERM, args=new_user)
    # clone3 passes its flags in memory a filter cannot read; without it libc falls back to clone.
    f.errno("clone3", errno.ENOSYS)
    f.program  # compiled here, in the parent, not after fork
    return f


def _landlock_ruleset(work: str, readable: list[str]) -> Ruleset:
    ruleset = Ruleset(scoped=Scope.ABSTRACT_UNIX_SOCKET | Scope.SIGNAL)  # all fs and TCP rights handled
    try:
        for p in readable:
            ruleset.allow_path(p, _READ_TREE if os.path.isdir(p) else _READ_FILE)
        for device in DEVICES:
            if os.path.exists(device):
                ruleset.allow_path(device, _DEVICE)
        ruleset.allow_path(work, _WORK_TREE)
    except BaseException:
        ruleset.close()
        raise
    return ruleset


class Sandbox:
    """Confinement for one check whose folder is ``work``: run ``interpreter`` with ``enter`` as
    preexec_fn, then ``close()``. ``files`` forces a way to confine files (tests try each)."""

    def __init__(self, work: Path, limits: Limits, files: Optional[str] = None):
        self.support = support()
        self.files = files or self.support.files
        if self.files not in FILES_MODES:
            raise ValueError(f"files must be one of {FILES_MODES}")
        self.work = str(work)
        self.limits = limits
        self.interpreter = interpreter()
        self.readable = readable_paths(self.interpreter)
        self.uid = NOBODY if self.support.root else os.getuid()
        self.gid = NOBODY if self.support.root else os.getgid()
        self._new_user_namespace = self.files == "namespaces" and not self.support.root
        if self.support.root:
            os.chown(self.work, NOBODY, NOBODY)
            os.chmod(os.path.dirname(self.work), 0o711)  # nobody passes through to its folder, sees nothing else
        # RLIMIT_NPROC counts the real uid's tasks machine-wide; a new user namespace counts its own.
        self._nproc = limits.processes if self._new_user_namespace else _tasks_of(self.uid) + limits.processes
        # Without Landlock or namespaces (files "none") nobody may then read any file: said by shortfalls().
        self._keep_dac_read_search = (self.support.root and self.files != "namespaces"
                                      and not all(_others_can_read(p) for p in self.readable))
        self._filter = _seccomp_filter() if self.support.seccomp else None
        self._ruleset = _landlock_ruleset(self.work, self.readable) if self.files == "landlock" else None
        if self.files == "namespaces":
            os.mkdir(os.path.join(os.path.dirname(self.work), "root"), 0o755)

    def close(self) -> None:
        if self._ruleset is not None:
            self._ruleset.close()

    def enter(self) -> None:
        """Runs in the child between fork and exec; the order matters (each step needs the last's rights)."""
        os.setsid()
        os.umask(0o022)
        if self.files == "namespaces":
            self._enter_namespaces()
        if self.support.root:
            self._become_nobody()
        cpu = int(self.limits.seconds) + 1
        for limit, value in ((resource.RLIMIT_AS, self.limits.memory_bytes), (resource.RLIMIT_CPU, cpu),
                             (resource.RLIMIT_FSIZE, self.limits.file_bytes), (resource.RLIMIT_CORE, 0),
                             (resource.RLIMIT_NPROC, self._nproc)):
            hard = resource.getrlimit(limit)[1]
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)  # a hard limit only goes down
            resource.setrlimit(limit, (value, value))
        if self._ruleset is not None:
            self._ruleset.restrict()  # sets no_new_privs first
        if self._filter is not None:
            self._filter.load()

    def _become_nobody(self) -> None:
        if self._keep_dac_read_search:
            _check(_libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0))
        os.setgroups([])
        os.setresgid(self.gid, self.gid, self.gid)
        os.setresuid(self.uid, self.uid, self.uid)
        if self._keep_dac_read_search:
            # Effective, permitted and inheritable hold only this one; ambient carries it across exec.
            header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
            data = (ctypes.c_uint32 * 6)(*([1 << _CAP_DAC_READ_SEARCH] * 3), 0, 0, 0)
            _check(_libc.capset(header, data))
            _check(_libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, _CAP_DAC_READ_SEARCH, 0, 0))

    def _enter_namespaces(self) -> None:
        """A private mount namespace whose root is a tmpfs holding only what the check may use."""
        if self._new_user_namespace:
            uid, gid = os.getuid(), os.getgid()
            _check(_libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS))
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
        else:
            _check(_libc.unshare(_CLONE_NEWNS))
        _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
        new_root = os.path.join(os.path.dirname(self.work), "root")
        _mount(b"tmpfs", new_root, b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0755,size=1m")
        for p in self.readable:
            _bind(p, new_root, read_only=True)
        for device in DEVICES:
            if os.path.exists(device):
                _bind(device, new_root, read_only=False)
        _bind(self.work, new_root, read_only=False)
        os.chdir(new_root)
        _check(_libc.syscall(_SYS_PIVOT_ROOT, b".", b"."))  # the old root now lies on top of "/"...
        _check(_libc.umount2(b".", _MNT_DETACH))  # ...and is gone
        _mount(None, "/", None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
        os.chdir(self.work)


_SYS_PIVOT_ROOT = {"x86_64": 155, "amd64": 155, "aarch64": 41, "arm64": 41}.get(platform.machine().lower(), -1)
# Mount flags a user namespace locks: a read-only remount must repeat them or fail with EPERM.
_LOCKED = tuple((getattr(os, st, 0), ms) for st, ms in (
    ("ST_NOSUID", _MS_NOSUID), ("ST_NODEV", _MS_NODEV), ("ST_NOEXEC", _MS_NOEXEC),
    ("ST_NOATIME", _MS_NOATIME), ("ST_NODIRATIME", _MS_NODIRATIME), ("ST_RELATIME", _MS_RELATIME)))


def _bind(path: str, new_root: str, read_only: bool) -> None:
    target = new_root + path
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.islink(path):
        os.symlink(os.readlink(path), target)
        return
    if os.path.isdir(path):
        os.makedirs(target, exist_ok=True)
    else:
        open(target, "wb").close()
    _mount(path.encode(), target, None, _MS_BIND | _MS_REC)
    if not read_only:
        return
    with open("/proc/self/mountinfo") as f:  # the bind's own mounts below it (a separate /usr/local, say) too
        points = [line.split()[4].replace("\\040", " ") for line in f]
    for point in [target, *sorted(p for p in points if p.startswith(target + "/"))]:
        kept = os.statvfs(point).f_flag
        flags = sum(ms for st, ms in _LOCKED if kept & st)
        _mount(None, point, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | flags)


def _mount(source: Optional[bytes], target: str, fstype: Optional[bytes], flags: int, data: Optional[bytes] = None) -> None:
    _check(_libc.mount(source, target.encode(), fstype, ctypes.c_ulong(flags), data))


def _check(result: int) -> None:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
