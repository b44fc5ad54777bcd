"""Kernel sandbox for query and update workers: no network unless allowed, files read-only.

pyoxigraph follows ``SERVICE`` and ``LOAD`` to any URL. The text guard in :mod:`.safety`
refuses them with a clear message, but it is a second reading of the query and could disagree
with Oxigraph's parser. This module is the wall below the parser: whatever text reaches a
worker, the kernel refuses what the worker may not do.

- **Landlock** (Linux >= 6.7 for networking, ABI 4): TCP ``connect`` and ``bind`` are denied,
  except ``connect`` to the ports of allowlisted SERVICE endpoints; files are readable only
  below the roots a worker needs (its store, Python, system libraries), and writable only in
  the store of an update worker. ABI 6 also scopes abstract Unix sockets and signals.
- **seccomp** (empty allowlist only): creating any socket but ``AF_UNIX`` fails with EACCES,
  which also stops UDP (DNS look-ups that could carry data out) that Landlock does not cover;
  ``io_uring_setup`` is refused too, as io_uring can open sockets beside the syscalls.

Both need only ``prctl(PR_SET_NO_NEW_PRIVS)``, no privileges. :func:`confine` returns a line
saying what is active; the executor logs it and warns where the kernel offers nothing.

>>> port_of("https://query.wikidata.org/sparql"), port_of("http://127.0.0.1:3030/q")
(443, 3030)
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["confine", "landlock_abi", "port_of"]

_ARCH = {  # machine -> (AUDIT_ARCH, socket, io_uring_setup, landlock_create_ruleset)
    "x86_64": (0xC000003E, 41, 425, 444),
    "aarch64": (0xC00000B7, 198, 425, 444),
}
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2

# Landlock access rights (include/uapi/linux/landlock.h).
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8
_FS_ALL_ABI1 = (1 << 13) - 1  # execute .. make_sym
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1, 2
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_READ = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR

# What a worker may read: Python and its packages, system libraries and configuration (TLS
# roots and resolver settings for an allowlisted SERVICE), devices and process information.
_SYSTEM_ROOTS = ("/usr", "/lib", "/lib64", "/etc", "/dev", "/proc", "/sys")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _syscall_numbers():
    return _ARCH.get(platform.machine())


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where there is none (or not Linux)."""
    nums = _syscall_numbers()
    if nums is None or not sys.platform.startswith("linux"):
        return 0
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(ctypes.c_long(nums[3]), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(0, abi)


def port_of(url: str) -> int | None:
    """The TCP port an endpoint IRI connects to (None for other schemes)."""
    parts = urlsplit(url)
    try:
        explicit = parts.port
    except ValueError:
        return None
    return explicit or {"http": 80, "https": 443}.get(parts.scheme.lower())


def confine(*, allowlist=(), readable=(), writable=()) -> str:
    """Confine this process for good; returns what is active, for the log.

    ``allowlist``: SERVICE endpoints (their ports stay connectable); ``readable`` and
    ``writable``: extra directories beyond the system roots. Never raises: a kernel without
    a mechanism gives a line starting with ``"UNSANDBOXED"``.
    """
    nums = _syscall_numbers()
    if nums is None or not sys.platform.startswith("linux"):
        return f"UNSANDBOXED: no kernel sandbox on {sys.platform}/{platform.machine()}"
    libc = _libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return f"UNSANDBOXED: prctl(NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}"
    active = []
    ports = sorted({p for p in map(port_of, allowlist) if p})
    abi = landlock_abi()
    if abi:
        active.append(_landlock(libc, nums[3], abi, ports, readable, writable))
    if not allowlist:
        active.append(_seccomp(libc, *nums[:3]))
    if abi < 4:
        note = f"UNSANDBOXED network (kernel Landlock ABI {abi}, needs 4): "
        return note + ("; ".join(active) if active else "nothing active")
    return "; ".join(active)


def _landlock(libc, create: int, abi: int, ports, readable, writable) -> str:
    fs = _FS_ALL_ABI1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    fs |= _FS_IOCTL_DEV if abi >= 5 else 0
    net = _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0
    scoped = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", fs, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    fd = libc.syscall(ctypes.c_long(create), attr, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if fd < 0:
        return f"landlock: ruleset refused ({os.strerror(ctypes.get_errno())})"
    try:
        readable = [*_SYSTEM_ROOTS, sys.prefix, sys.base_prefix, sys.exec_prefix,
                    str(Path(__file__).resolve().parent.parent), *readable]  # the package
        for path in dict.fromkeys(readable):
            _add_path(libc, create + 1, fd, path, _READ & fs)
        for path in writable:
            _add_path(libc, create + 1, fd, path, fs & ~_FS_IOCTL_DEV)
        for port in ports:
            rule = struct.pack("=QQ", _NET_CONNECT_TCP, port)
            libc.syscall(ctypes.c_long(create + 1), fd, _RULE_NET_PORT, rule, 0)
        if libc.syscall(ctypes.c_long(create + 2), fd, 0) != 0:
            return f"landlock: restrict_self failed ({os.strerror(ctypes.get_errno())})"
    finally:
        os.close(fd)
    parts = [f"landlock ABI {abi}: files read-only"
             + (f" but {len(writable)} store dir(s)" if writable else "")]
    if net:
        parts.append("TCP connect denied" + (f" but to ports {ports}" if ports else "")
                     + ", bind denied")
    if scoped:
        parts.append("abstract sockets and signals scoped")
    return ", ".join(parts)


def _add_path(libc, add_rule: int, ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a root that does not exist here needs no rule
    try:
        if not os.path.isdir(path):
            access &= _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
        rule = struct.pack("=Qi", access, fd)
        libc.syscall(ctypes.c_long(add_rule), ruleset, _RULE_PATH_BENEATH, rule, 0)
    finally:
        os.close(fd)


def _seccomp(libc, arch: int, socket_nr: int, io_uring_nr: int) -> str:
    """A filter: socket(domain != AF_UNIX) and io_uring_setup fail with EACCES."""
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ/JGE|K, BPF_RET|K
    allow, deny = 0x7FFF0000, 0x00050000 | 13  # SECCOMP_RET_ALLOW, RET_ERRNO | EACCES
    prog = [
        (ld, 0, 0, 4),  # seccomp_data.arch
        (jeq, 1, 0, arch),
        (ret, 0, 0, deny),  # another ABI (i386 on x86_64): a worker never uses one
        (ld, 0, 0, 0),  # seccomp_data.nr
        (jge, 4, 0, 0x40000000),  # x32 numbering of the same calls
        (jeq, 3, 0, io_uring_nr),
        (jeq, 0, 3, socket_nr),
        (ld, 0, 0, 16),  # args[0], the domain (low 32 bits)
        (jeq, 1, 0, 1),  # AF_UNIX
        (ret, 0, 0, deny),
        (ret, 0, 0, allow),
    ]
    buf = b"".join(struct.pack("=HBBI", *ins) for ins in prog)
    filt = ctypes.create_string_buffer(buf, len(buf))
    fprog = struct.pack("@HP", len(prog), ctypes.addressof(filt))  # struct sock_fprog
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, fprog, 0, 0) != 0:
        return f"seccomp refused ({os.strerror(ctypes.get_errno())})"
    return "seccomp: no network sockets"
