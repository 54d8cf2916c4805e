"""``make eval``: answer quality of Selador, measured on a labelled question set.

``python -m eval`` runs every question of ``tests/eval/questions.yaml`` through the real
orchestrator (whatever model and knowledge base the settings select; offline responder and bundled
knowledge base by default), records the tool calls, the passages each search returned and the
answer, and scores them:

* tool selection: the set of tools called equals the labelled set (:mod:`eval.metrics`);
* argument accuracy: labelled key arguments match (numbers within 1%);
* retrieval: recall@5 and MRR of the labelled knowledge-base sections;
* fact coverage: the share of labelled facts the answer contains.

Modules: :mod:`eval.dataset` (load and check the labels), :mod:`eval.runner` (run the questions),
:mod:`eval.metrics` (pure metric functions), :mod:`eval.report` (score, table, ``results.json``).
"""
