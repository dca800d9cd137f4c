#!/usr/bin/python3
"""aion integration test runner (stdlib only; run as root).

  /usr/bin/python3 tests/integration/run.py --agent build/aion-agent [-k SUBSTR]... [-v]

Discovers every `test_*` function in tests/integration/test_*.py (in file
and definition order), runs each with a per-test timeout, always kills the
processes a test started, prints one line per test and, as the very last
line, `integration: N passed, M failed`. Exit status 0 only if M == 0 and
N > 0. Nothing is ever skipped: a missing tool or a failed preflight is a
failure with the reason.
"""
import argparse
import glob
import importlib
import os
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True   # no __pycache__ in the source tree

import lib  # noqa: E402


class TestTimeout(BaseException):
    """Raised from SIGALRM; a BaseException so `except Exception` in test
    code cannot swallow it."""


def _alarm(signum, frame):
    raise TestTimeout()


def _interrupt(signum, frame):
    raise KeyboardInterrupt()


def _mounted(path):
    try:
        with open("/proc/mounts") as f:
            return any(l.split()[1] == path for l in f if len(l.split()) > 2)
    except OSError:
        return False


def preflight():
    """Returns a list of problems (empty when fine)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("integration tests need root (euid is %d)" % os.geteuid())
        return problems
    for path, fstype in (("/sys/kernel/tracing", "tracefs"), ("/sys/fs/bpf", "bpf")):
        if _mounted(path):
            continue
        os.makedirs(path, exist_ok=True)
        r = subprocess.run(["mount", "-t", fstype, fstype, path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0 and not _mounted(path):
            problems.append("cannot mount %s at %s: %s" % (fstype, path, r.stderr.decode().strip()))
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        problems.append("/sys/kernel/btf/vmlinux is missing (kernel without BTF)")
    return problems


def discover(ks):
    tests = []
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        modname = os.path.splitext(os.path.basename(path))[0]
        try:
            mod = importlib.import_module(modname)
        except Exception as e:
            name = modname + ".<import>"
            tests.append((name, None, "import failed: %s" % "".join(
                traceback.format_exception_only(type(e), e)).strip()))
            continue
        for name, fn in list(vars(mod).items()):
            if name.startswith("test_") and callable(fn) and getattr(fn, "__module__", None) == modname:
                tests.append((name, fn, None))
    if ks:
        tests = [t for t in tests if any(k in t[0] for k in ks)]
    return tests


def _one_line(s):
    s = " ".join(str(s).split("\n")[0:1]).strip()
    return s if len(s) <= 400 else s[:400] + "..."


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", required=True, help="path to aion-agent")
    ap.add_argument("-k", action="append", default=[], metavar="SUBSTR",
                    help="run only tests whose name contains SUBSTR (repeatable)")
    ap.add_argument("-v", action="store_true", help="verbose: progress, tracebacks, full agent stderr")
    ap.add_argument("--timeout", type=float, default=120.0, help="per-test timeout in seconds (120)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dirs of failed tests")
    a = ap.parse_args()

    lib.AGENT = os.path.abspath(a.agent)
    lib.VERBOSE = a.v
    # line-buffered output so progress is visible under make
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except AttributeError:
        pass

    tests = discover(a.k)
    problems = preflight()
    if not os.path.exists(lib.AGENT):
        problems.append("agent binary %s does not exist (run `make`)" % lib.AGENT)
    elif not os.access(lib.AGENT, os.X_OK):
        problems.append("agent binary %s is not executable" % lib.AGENT)

    signal.signal(signal.SIGALRM, _alarm)
    # make/CI sending SIGTERM or SIGHUP must still run the cleanup
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    counts = [0, 0]
    try:
        _run_all(tests, problems, a, counts)
    except KeyboardInterrupt:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        lib.cleanup()
        print("FAIL <interrupted>: runner interrupted, started processes killed")
        counts[1] += 1
    passed, failed = counts
    print("integration: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and passed > 0 else 1


def _run_all(tests, problems, a, counts):
    for name, fn, import_err in tests:
        t0 = time.monotonic()
        reason = None
        details = []
        if import_err:
            reason = import_err
        elif problems:
            reason = "preflight: " + "; ".join(problems)
        else:
            if a.v:
                print("RUN  %s" % name)
            signal.setitimer(signal.ITIMER_REAL, a.timeout)
            try:
                fn()
            except TestTimeout:
                reason = "timed out after %.0fs" % a.timeout
                details.append("".join(traceback.format_stack(sys.exc_info()[2].tb_frame)[-3:]))
            except lib.TestFailure as e:
                reason = str(e)
                details.append(traceback.format_exc())
            except AssertionError as e:
                reason = "assertion failed: %s" % (e or traceback.format_exc().strip().split("\n")[-2])
                details.append(traceback.format_exc())
            except Exception as e:
                reason = "%s: %s" % (type(e).__name__, e)
                details.append(traceback.format_exc())
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            dumps = lib.agent_stderr_dump() if reason else []
            try:
                notes = lib.cleanup(keep_tmp=bool(reason) and a.keep_tmp)
            except TestTimeout:
                notes = ["cleanup interrupted"]
            if notes and a.v:
                details.append("cleanup: " + "; ".join(notes))
        dt = time.monotonic() - t0
        if reason is None:
            counts[0] += 1
            print("PASS %s (%.1fs)" % (name, dt))
        else:
            counts[1] += 1
            print("FAIL %s: %s (%.1fs)" % (name, _one_line(reason), dt))
            full = str(reason).split("\n")
            extra = full[1:]
            if len(full[0]) > 400:
                extra = [full[0]] + extra
            for l in extra:
                print("    | " + l)
            if not import_err and not problems:
                for title, text in dumps:
                    lines = text.rstrip("\n").split("\n") if text.strip() else ["(empty)"]
                    if not a.v:
                        lines = lines[-15:]
                    print("    | %s stderr%s:" % (title, "" if a.v else " (last 15 lines)"))
                    for l in lines:
                        print("    |   " + l)
                if a.v:
                    for d in details:
                        for l in d.rstrip("\n").split("\n"):
                            print("    | " + l)


if __name__ == "__main__":
    sys.exit(main())
