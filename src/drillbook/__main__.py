"""The `drillbook` console script and `python -m drillbook`: the program, as a short-lived process.

Two settings of the interpreter suit a command that starts, works a moment and exits. They are
made here, at the program's entry, and never on `import drillbook`: a project's own `invoke`
keeps its interpreter as it was.

- The cyclic garbage collector runs less often: by default it runs every 700 new objects, and
  loading invoke, pydantic, jinja2 and requests creates hundreds of thousands, each full
  collection walking all of them again (about 10 ms of a release).
- At the end everything is frozen (`gc.freeze`), so that the interpreter's last collection does
  not walk every object only to exit (20 to 40 ms of every command). Objects are still freed as
  their counts drop; only cycles are left to the end of the process, which is a moment away.
"""

from __future__ import annotations

import gc
import sys

#: Objects between two young collections (the interpreter's default is 700); the older
#: generations every 20 of the one below (default 10).
GC_THRESHOLDS = (50_000, 20, 20)


def main() -> None:
    """Entry point of the `drillbook` console script."""
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        from drillbook.cli import main as run_program

        run_program()
    except KeyboardInterrupt:
        # Ctrl-C while the program loads, before its own handling of signals is in place (a
        # task's interruption is handled, and said, by the program): nothing has run yet.
        sys.stderr.write("drillbook: interrupted (SIGINT) while starting; nothing ran\n")
        sys.exit(130)  # errors.EXIT_SIGINT, not imported: the program may not have loaded
    finally:
        gc.freeze()


if __name__ == "__main__":
    # The journal records the program's name from argv[0]; under -m it would be __main__.py.
    sys.argv[0] = "drillbook"
    main()
