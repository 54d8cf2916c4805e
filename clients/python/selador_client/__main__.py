"""``python -m selador_client "question"``: the terminal client (see :mod:`selador_client.cli`)."""

import sys

from .cli import main

sys.exit(main(prog="python -m selador_client"))
