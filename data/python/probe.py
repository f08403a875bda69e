"""pyferry's interpreter probe: prints one JSON object describing the interpreter it runs in.

Run by src/python/interpreter.ts as `python -I -c <this file>` (`-E -s -c` on 2.7). It must stay
valid Python 2.7 and 3.6+, and import nothing but the standard library, since it runs inside
environments pyferry does not control. The "PYFERRY-PROBE:" marker before the JSON must match
PROBE_MARKER in src/python/probe.ts.
"""
import sys
# Without -I (Python 2.7) "-c" puts the working directory first; drop it before importing more.
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]
import json
import os
import platform
import re
import struct
import subprocess
import sysconfig

PY3 = sys.version_info[0] >= 3


def version_str(info):
    text = "%d.%d.%d" % (info[0], info[1], info[2])
    if info[3] != "final":
        text += info[3][0] + str(info[4])
    return text


def abi_tag():
    soabi = sysconfig.get_config_var("SOABI")
    impl = platform.python_implementation()
    if soabi and soabi.startswith("cpython-"):
        # "cpython-313t-x86_64-linux-gnu": the flags after the digits are the ABI flags.
        return "cp" + soabi.split("-")[1]
    if soabi:
        # PyPy and friends: "pypy39-pp73" becomes the wheel tag "pypy39_pp73".
        return re.sub(r"[^A-Za-z0-9]", "_", soabi)
    ext = sysconfig.get_config_var("EXT_SUFFIX") or ""
    match = re.match(r"^\.(cp\d+[a-z]*)-", ext)
    if match:
        return match.group(1)
    if impl == "CPython" and not PY3:
        flags = ""
        if sysconfig.get_config_var("Py_DEBUG"):
            flags += "d"
        if sysconfig.get_config_var("WITH_PYMALLOC"):
            flags += "m"
        if sys.maxunicode == 0x10FFFF:
            flags += "u"
        return "cp%d%d%s" % (sys.version_info[0], sys.version_info[1], flags)
    return None


def glibc_version():
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")
        if text and text.startswith("glibc "):
            return text.split(" ", 1)[1]
    except (AttributeError, ValueError, OSError):
        pass
    try:
        import ctypes
        func = ctypes.CDLL(None).gnu_get_libc_version
        func.restype = ctypes.c_char_p
        value = func()
        return value.decode("ascii") if PY3 else value
    except Exception:
        return None


def elf_interpreter(path):
    # The PT_INTERP segment names the dynamic loader, which is how a musl build is recognised.
    try:
        with open(path, "rb") as handle:
            ident = handle.read(16)
            if ident[:4] != b"\x7fELF":
                return None
            wide = ident[4:5] == b"\x02"
            endian = "<" if ident[5:6] == b"\x01" else ">"
            if wide:
                handle.seek(32)
                phoff = struct.unpack(endian + "Q", handle.read(8))[0]
                handle.seek(54)
            else:
                handle.seek(28)
                phoff = struct.unpack(endian + "I", handle.read(4))[0]
                handle.seek(42)
            phentsize, phnum = struct.unpack(endian + "HH", handle.read(4))
            for index in range(phnum):
                handle.seek(phoff + index * phentsize)
                ptype = struct.unpack(endian + "I", handle.read(4))[0]
                if ptype != 3:
                    continue
                if wide:
                    handle.seek(phoff + index * phentsize + 8)
                    offset, _vaddr, _paddr, size = struct.unpack(endian + "QQQQ", handle.read(32))
                else:
                    handle.seek(phoff + index * phentsize + 4)
                    offset, _vaddr, _paddr, size = struct.unpack(endian + "IIII", handle.read(16))
                handle.seek(offset)
                return handle.read(size).rstrip(b"\x00").decode("ascii", "replace")
    except (IOError, OSError, struct.error):
        return None
    return None


def musl_version():
    loader = elf_interpreter(sys.executable)
    if not loader or "musl" not in loader:
        return None
    try:
        # The musl loader prints its version to stderr when run without arguments.
        proc = subprocess.Popen([loader], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _out, err = proc.communicate()
    except OSError:
        return None
    match = re.search(r"Version ([0-9][0-9.]*)", err.decode("ascii", "replace"))
    return match.group(1) if match else None


# Before 3.10 there is no sys.stdlib_module_names; approximate it from what the interpreter ships.
# scripts/gen-stdlib-tables.py applies the same rule for the 3.8/3.9 tables: keep the two in step.
SKIP = re.compile(
    r"^(test|_test.*|__hello__.*|__phello__.*|_ctypes_test|_?xx.*"
    r"|sitecustomize|usercustomize|__main__)$"
)
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Part of CPython on some platform, or often split into a separate distro package.
EXTRA_3 = [
    "_dbm", "_frozen_importlib", "_frozen_importlib_external", "_gdbm", "_msi", "_overlapped",
    "_scproxy", "_tkinter", "_winapi", "distutils", "ensurepip", "idlelib", "lib2to3", "msilib",
    "msvcrt", "nt", "tkinter", "turtledemo", "winreg", "winsound",
]
EXTRA_2 = [
    "Tkinter", "_msi", "_scproxy", "_subprocess", "_tkinter", "_winreg", "dbm", "distutils",
    "ensurepip", "gdbm", "idlelib", "lib2to3", "msilib", "msvcrt", "nt", "winsound",
]


def module_suffixes():
    if PY3:
        import importlib.machinery as machinery
        return machinery.EXTENSION_SUFFIXES + machinery.SOURCE_SUFFIXES + [".pyc"]
    import imp
    return [suffix for suffix, _mode, kind in imp.get_suffixes()]


def derived_stdlib_modules():
    names = set(sys.builtin_module_names)
    names.update(EXTRA_3 if PY3 else EXTRA_2)
    paths = sysconfig.get_paths()
    roots = set(os.path.realpath(paths[key]) for key in ("stdlib", "platstdlib"))
    suffixes = module_suffixes()
    for entry in sys.path:
        real = os.path.realpath(entry or ".")
        inside = [root for root in roots if real == root or real.startswith(root + os.sep)]
        if not inside or "site-packages" in real or "dist-packages" in real:
            continue
        try:
            listing = os.listdir(real)
        except OSError:
            continue
        for name in listing:
            full = os.path.join(real, name)
            if os.path.isdir(full):
                if os.path.isfile(os.path.join(full, "__init__.py")):
                    names.add(name)
                continue
            for suffix in suffixes:
                if name.endswith(suffix):
                    names.add(name[: -len(suffix)])
                    break
    return sorted(name for name in names if IDENTIFIER.match(name) and not SKIP.match(name))


def user_site_entries(is_venv):
    # -I/-s leave out the user site-packages that a plain "python -c" would add; add it back
    # (without running .pth "import" lines) unless a venv or a setuid process would skip it.
    import site
    if is_venv and not venv_includes_system_site():
        return []
    if hasattr(os, "getuid") and (os.getuid() != os.geteuid() or os.getgid() != os.getegid()):
        return []
    if os.environ.get("PYTHONNOUSERSITE"):
        return []
    try:
        user_site = site.getusersitepackages()
    except Exception:
        return []
    if not user_site or not os.path.isdir(user_site):
        return []
    entries = [user_site]
    try:
        names = sorted(name for name in os.listdir(user_site) if name.endswith(".pth"))
    except OSError:
        names = []
    for name in names:
        try:
            with open(os.path.join(user_site, name)) as handle:
                lines = handle.read().splitlines()
        except (IOError, OSError, UnicodeDecodeError):
            continue
        for line in lines:
            line = line.rstrip()
            if not line or line.startswith("#") or re.match(r"^import[ \t]", line):
                continue
            full = os.path.abspath(os.path.join(user_site, line))
            if os.path.exists(full) and full not in entries:
                entries.append(full)
    return entries


def venv_includes_system_site():
    for folder in (os.path.dirname(sys.executable), os.path.dirname(os.path.dirname(sys.executable))):
        cfg = os.path.join(folder, "pyvenv.cfg")
        if os.path.isfile(cfg):
            with open(cfg) as handle:
                for line in handle:
                    key, _sep, value = line.partition("=")
                    if key.strip().lower() == "include-system-site-packages":
                        return value.strip().lower() == "true"
            return False
    # A virtualenv without pyvenv.cfg (old virtualenv on 2.7) decides for itself.
    return False


def normal_sys_path(is_venv):
    # PYTHONPATH is ignored under -I/-E but a plain "python -c" puts it first.
    front = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    result = []
    for entry in front + sys.path:
        if entry and entry not in result:
            result.append(entry)
    user = [e for e in user_site_entries(is_venv) if e not in result]
    if user:
        # site.py adds the user site before the system site-packages.
        at = len(result)
        for index, entry in enumerate(result):
            if os.path.basename(entry) in ("site-packages", "dist-packages"):
                at = index
                break
        result[at:at] = user
    return result


def marker_env():
    if hasattr(sys, "implementation"):
        impl_name = sys.implementation.name
        impl_version = version_str(sys.implementation.version)
    else:
        impl_name = ""
        impl_version = "0"
    return {
        "implementation_name": impl_name,
        "implementation_version": impl_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def main():
    base_prefix = getattr(sys, "base_prefix", getattr(sys, "real_prefix", sys.prefix))
    is_venv = sys.prefix != base_prefix or hasattr(sys, "real_prefix")
    if hasattr(sys, "implementation"):
        implementation = sys.implementation.name
    else:
        implementation = platform.python_implementation().lower()
    if hasattr(sys, "stdlib_module_names"):
        stdlib = sorted(sys.stdlib_module_names)
    else:
        stdlib = derived_stdlib_modules()
    info = {
        "sysExecutable": sys.executable,
        "version": "%d.%d.%d" % sys.version_info[:3],
        "versionInfo": list(sys.version_info[:5]),
        "implementation": implementation,
        "abiTag": abi_tag(),
        "platform": sysconfig.get_platform(),
        "machine": platform.machine(),
        "glibc": glibc_version(),
        "musl": musl_version(),
        "pointerBits": struct.calcsize("P") * 8,
        "prefix": sys.prefix,
        "basePrefix": base_prefix,
        "isVirtualenv": is_venv,
        "paths": sysconfig.get_paths(),
        "sysPath": normal_sys_path(is_venv),
        "stdlibModules": stdlib,
        "markerEnv": marker_env(),
    }
    sys.stdout.write("\n" + "PYFERRY-PROBE:" + json.dumps(info) + "\n")
    sys.stdout.flush()


if __name__ == "__main__" and "--stdlib-derived" in sys.argv[1:]:
    # For scripts/gen-stdlib-tables.py: the derivation rule alone, even where
    # sys.stdlib_module_names exists, so the rule can be checked against it.
    sys.stdout.write(json.dumps(derived_stdlib_modules()) + "\n")
else:
    main()
