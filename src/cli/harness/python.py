# cordon's python harness (embedded in the cordon binary, written to /tmp/.cordon/harness.py
# in each sandbox, run as `python3 /tmp/.cordon/harness.py`; see src/cli/spawn-plan.c).
#
# It loads the user's program and runs it the way `python3 main.py ARGS` would, with three
# additions, each reported as one record line on stdout ("\x1e" "cordon:" NONCE ":" JSON "\n",
# parsed by src/cli/spawn-out.c):
#   - function-shaped code: a top-level `def main(input)` (or `async def`) is called with the
#     request's `input`; its JSON return value is the run's `result`. `if __name__ ==
#     "__main__":` blocks do not run in that mode: main is called instead.
#   - capture_console: print() to stdout/stderr and logging records are reported as logs
#     (level log/error for print, the logging level otherwise). Output still goes where it
#     would have gone, so programs that are judged on stdout behave the same.
#   - an uncaught exception: its traceback (cordon's frames left out) and the innermost frame
#     of the user's own files as {file, line, column}.
# The nonce is read from a file that is unlinked before the user's code runs. This is not a
# security boundary (the user's code shares this process and could dig the nonce out of
# memory): it keeps data the program passes through from forging a record. What cordon asserts
# itself (exit status, limits, verdicts) never comes from a record.
# Only what every run needs is imported here; json, ast and traceback cost tens of ms on a busy
# host and are imported when a record, a main() or an error needs them.
import builtins
import os
import sys
import types

_CONF = "/tmp/.cordon/conf.txt"  # entry, entry_rel, capture 0/1, has_input 0/1, user files...
_INPUT = "/tmp/.cordon/input.json"
_NONCE = "/tmp/.cordon/nonce"
_LEVELS = {10: "debug", 20: "info", 30: "warn", 40: "error", 50: "error"}


def _setup():
    with open(_NONCE, "rb") as f:
        nonce = f.read().strip()
    os.unlink(_NONCE)
    with open(_CONF, encoding="utf-8", errors="surrogateescape") as f:
        lines = f.read().split("\n")
    conf = {"entry": lines[0], "entry_rel": lines[1], "capture": lines[2] == "1",
            "has_input": lines[3] == "1", "files": [l for l in lines[4:] if l]}
    marker = b"\x1ecordon:" + nonce + b":"
    real_stdout, real_stderr = sys.stdout, sys.stderr

    def emit(rec):
        import json
        # Our own output first, so a record never overtakes text printed before it.
        for s in (sys.stdout, sys.stderr, real_stdout, real_stderr):
            try:
                s.flush()
            except Exception:
                pass
        data = marker + json.dumps(rec, ensure_ascii=False, default=repr).encode(
            "utf-8", "backslashreplace") + b"\n"
        while data:
            try:
                n = os.write(1, data)
            except InterruptedError:
                continue
            except OSError:
                return
            data = data[n:]

    return conf, emit


def _capture(emit):
    real_print = builtins.print

    def print(*args, sep=" ", end="\n", file=None, flush=False):
        real_print(*args, sep=sep, end=end, file=file, flush=flush)
        target = sys.stdout if file is None else file
        if target is sys.stdout or target is sys.stderr:
            sep = " " if sep is None else sep
            emit({"t": "log", "level": "error" if target is sys.stderr else "log",
                  "message": sep.join(str(a) for a in args)})

    builtins.print = print

    import logging
    real_call = logging.Logger.callHandlers

    def callHandlers(self, record):
        try:
            msg = record.getMessage()
        except Exception as e:
            msg = f"{record.msg!r} (formatting failed: {e})"
        emit({"t": "log", "level": _LEVELS.get(record.levelno, "info"), "message": msg})
        return real_call(self, record)

    logging.Logger.callHandlers = callHandlers


def _function_shaped(tree):
    import ast
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "main":
            a = node.args
            return len(a.posonlyargs) + len(a.args) >= 1 or a.vararg is not None
    return False


def _location(exc, user_files):
    if isinstance(exc, SyntaxError) and exc.filename in user_files:
        return exc.filename, exc.lineno, exc.offset
    tb, loc = exc.__traceback__, None
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename in user_files:
            col = None
            try:
                for i, pos in enumerate(code.co_positions()):
                    if i == tb.tb_lasti // 2:
                        col = pos[2] + 1 if pos[2] is not None else None
                        break
            except Exception:
                pass
            loc = (code.co_filename, tb.tb_lineno, col)
        tb = tb.tb_next
    return loc if loc else (None, None, None)


def _message(exc):
    text = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _report(emit, exc, user_files, entry, entry_rel):
    import traceback
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    # Leave out cordon's own frames: the stack is about the user's code.
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if f.filename in user_files])
    stack = "".join(te.format())
    sys.stderr.write(stack)
    file, line, col = _location(exc, user_files)
    if file is not None:
        file = entry_rel if file == entry else file[len("/tmp/"):]
    emit({"t": "error", "value": {
        "name": type(exc).__name__,
        "message": _message(exc),
        "stack": stack, "file": file, "line": line, "column": col}})


def _run():
    conf, emit = _setup()
    entry, args = conf["entry"], sys.argv[1:]
    user_files = set(conf["files"])
    if conf["capture"]:
        _capture(emit)
    with open(entry, "rb") as f:
        source = f.read()
    try:
        shaped = False
        if b"def main" in source:
            import ast
            tree = ast.parse(source, entry)
            shaped = _function_shaped(tree)
            code = compile(tree, entry, "exec")
        else:
            code = compile(source, entry, "exec")
    except SyntaxError as e:
        _report(emit, e, user_files, entry, conf["entry_rel"])
        return 1
    mod = types.ModuleType("__main__" if not shaped else "__cordon_main__")
    mod.__file__ = entry
    mod.__builtins__ = builtins
    sys.modules["__main__"] = mod
    sys.argv = [entry] + args
    sys.path[0] = os.path.dirname(entry)
    try:
        exec(code, mod.__dict__)
        if shaped:
            import json
            arg = None
            if conf["has_input"]:
                with open(_INPUT, "rb") as f:
                    arg = json.load(f)
            value = mod.__dict__["main"](arg)
            if isinstance(value, types.CoroutineType):
                import asyncio
                value = asyncio.run(value)
            try:
                text = json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise TypeError(f"main() returned a value that is not JSON: {e}") from None
            emit({"t": "result", "value": json.loads(text)})
    except SystemExit:
        raise
    except BaseException as e:
        _report(emit, e, user_files, entry, conf["entry_rel"])
        return 1
    return 0


if __name__ == "__main__":
    _status = _run()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    sys.exit(_status)
