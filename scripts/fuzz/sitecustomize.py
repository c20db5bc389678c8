# Loaded by the fuzzer's Python at start-up (fuzz-api.sh puts this folder on PYTHONPATH).
#
# CPython 3.11 (Debian's) keeps the AST constructor's recursion depth in interpreter-wide state. When a
# garbage collection in the middle of one thread's ast.parse runs a finalizer and another thread parses
# meanwhile, the first fails with "SystemError: AST constructor recursion depth mismatch". Hypothesis
# parses lambdas' sources while schemathesis' workers are threads; this once failed CI with no fault in
# the API. Parses run one at a time.
import ast
import threading

_parse = ast.parse
# Re-entrant: a finalizer that parses, run by a collection inside a parse, must not wait for itself.
_lock = threading.RLock()


def _parse_one_at_a_time(*args, **kwargs):
    with _lock:
        return _parse(*args, **kwargs)


ast.parse = _parse_one_at_a_time
