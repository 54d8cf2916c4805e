"""``make bench``: the performance targets of Selador, measured on this machine.

One module per measurement (``cold_start``, ``streaming``, ``concurrency``, ``memory``, ``bundle``);
``python -m bench`` runs them, prints a table and writes ``bench/results.json``. See the
"Performance" section of the README for what each number means and how it is taken.
"""
