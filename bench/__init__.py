"""``make bench``: the performance targets of Selador, measured on this machine.

One module per measurement (``cold_start``, ``streaming``, ``concurrency``, ``runs`` for ``resume``,
``cancel``, ``bundle``); ``python -m bench`` runs them, prints a table and writes
``bench/results.json``. ``python -m bench.soak`` (``make soak``) is the fault-injection soak.
:mod:`bench.sequence` is the client's dedupe-by-``seq`` rule both use to judge what arrived. See
the "Performance" section of the README for what each number means and how it is taken.
"""
