"""The ``selador`` command: ``serve``, ``invoke`` and ``token`` subcommands.

Each subcommand lives in its own module, imported only when chosen, so ``selador invoke`` does
not pay for the gateway's web server and vice versa.
"""

from __future__ import annotations

import importlib
import sys

_COMMANDS = {
    "serve": ("selador.local.serve", "run the local API Gateway (WebSocket, @connections, HTTP, Lambda)"),
    "invoke": ("selador.local.invoke", "run one event file through the handler in-process"),
    "token": ("selador.local.token", "print a test JWT signed with AUTH_HS256_SECRET"),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``selador`` console script.

    Args:
        argv: Arguments after the program name (defaults to ``sys.argv[1:]``).

    Returns:
        The process exit status.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"} or args[0] not in _COMMANDS:
        lines = ["usage: selador {" + ",".join(_COMMANDS) + "} [options]", ""]
        lines += [f"  {name:<8}{help_}" for name, (_, help_) in _COMMANDS.items()]
        print("\n".join(lines), file=sys.stderr if args and args[0] not in {"-h", "--help"} else sys.stdout)
        return 0 if args and args[0] in {"-h", "--help"} else 2
    module_name, _ = _COMMANDS[args[0]]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            print(f"selador: '{args[0]}' is not available in this build", file=sys.stderr)
            return 2
        raise
    return int(module.main(args[1:]))


if __name__ == "__main__":
    raise SystemExit(main())
