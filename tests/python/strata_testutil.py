"""Shared helpers of the Python tests (tests/python/test_*.py).

Each test file is a plain program: exit 0 pass, 1 fail, 77 skip (numpy or
torch missing, no strata-server, library built without UCX).  Servers are
started here, on 127.0.0.1 with --port 0, and always stopped.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

SKIP = 77
REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SECRET = b"python-test-secret"
# UCX transports for a single host: shared memory and TCP over loopback.
UCX_ENV = {"UCX_TLS": "sm,self,tcp", "UCX_NET_DEVICES": "lo"}


def skip(why):
    print("SKIP: %s" % why, file=sys.stderr)
    sys.exit(SKIP)


def import_strata(need_torch=False):
    """Import numpy (and torch), then strata; exit 77 when a dependency is
    missing."""
    sys.path.insert(0, os.path.join(REPO, "client", "python"))
    try:
        import numpy  # noqa: F401
    except ImportError:
        skip("numpy is not installed for %s" % sys.executable)
    if need_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            skip("torch is not installed for %s" % sys.executable)
    import strata
    os.environ.update(UCX_ENV)  # the client reads UCX's settings at connect
    return strata


def _die_with_parent():
    """preexec_fn: the server gets SIGTERM if this test process dies
    (crash, CTest timeout), so no server outlives its test."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def server_bin():
    b = os.environ.get("STRATA_SERVER_BIN")
    if b:
        return b
    return os.path.join(REPO, "build", "server", "strata-server")


class Cluster:
    """n strata-servers on 127.0.0.1; use as a context manager.

    ``servers`` is the "host:port,..." list for strata.Client.
    """

    def __init__(self, n=1, extra_args=()):
        self.n = n
        self.extra_args = list(extra_args)
        self.procs = []
        self.logs = []
        self.servers = ""
        self.dir = None

    def __enter__(self):
        binary = server_bin()
        if not os.path.exists(binary):
            skip("no strata-server at %s (set STRATA_SERVER_BIN)" % binary)
        self.dir = tempfile.mkdtemp(prefix="strata-pytest-")
        env = dict(os.environ, **UCX_ENV)
        ports = []
        try:
            for i in range(self.n):
                portfile = os.path.join(self.dir, "port.%d" % i)
                log = os.path.join(self.dir, "server.%d.log" % i)
                self.logs.append(log)
                with open(log, "wb") as logf:
                    p = subprocess.Popen(
                        [binary, "--listen", "127.0.0.1:0", "--port-file", portfile,
                         "--index", str(i), "--nservers", str(self.n),
                         "--secret", SECRET.decode()] + self.extra_args,
                        stdout=logf, stderr=subprocess.STDOUT, env=env,
                        preexec_fn=_die_with_parent)
                self.procs.append(p)
                ports.append(self._wait_port(p, portfile, log))
        except BaseException:
            self.stop()
            raise
        self.servers = ",".join("127.0.0.1:%d" % port for port in ports)
        return self

    @staticmethod
    def _wait_port(p, portfile, log):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with open(portfile) as f:
                    text = f.read().strip()
                if text and int(text.split()[0]) > 0:
                    return int(text.split()[0])
            except (OSError, ValueError):
                pass
            if p.poll() is not None:
                with open(log, errors="replace") as f:
                    tail = f.read()[-2000:]
                if "UNSUPPORTED" in tail or "without UCX" in tail:
                    skip("strata-server built without UCX: %s" % tail.strip())
                raise RuntimeError("strata-server exited with %s during start; log:\n%s" %
                                   (p.returncode, tail))
            time.sleep(0.01)
        raise RuntimeError("strata-server did not write %s in 30 s" % portfile)

    def stop(self):
        """SIGTERM every server, SIGKILL after 10 s; returns True if all
        exited 0."""
        ok = True
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                ok = False
            if p.returncode != 0:
                ok = False
        self.procs = []
        return ok

    def __exit__(self, *exc):
        clean = self.stop()
        if not clean and exc[0] is None:
            for log in self.logs:
                with open(log, errors="replace") as f:
                    sys.stderr.write("--- %s\n%s\n" % (log, f.read()[-2000:]))
            raise RuntimeError("a strata-server did not exit cleanly on SIGTERM")
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False


def run(module_name):
    """Run the module's tests; returns the exit code (0 pass, 1 fail, 77
    when every test skipped)."""
    prog = unittest.main(module=module_name, exit=False, verbosity=2)
    result = prog.result
    if not result.wasSuccessful():
        return 1
    if result.testsRun and len(result.skipped) == result.testsRun:
        return SKIP
    return 0
