"""The offline responder: a deterministic stand-in for a language model (it is not one).

Modules: :mod:`.lexicon` (topic words, typo-tolerant matching), :mod:`.reading` (what a message
asks and the figures it gives), :mod:`.planning` (which tools, with which inputs),
:mod:`.composing` (the answer from the tool results), :mod:`.model` (the Strands ``Model``);
for conversations, :mod:`.recall` (the user's earlier questions), :mod:`.inputs` (asks and inputs by
name) and :mod:`.thread` (a follow-up read as the thread's question with its figures).
"""

from selador.agents.offline.composing import DISCLAIMER, compose_answer
from selador.agents.offline.model import OFFLINE_MODEL_ID, OfflineResponder, tokenize
from selador.agents.offline.planning import plan_tool_calls
from selador.agents.offline.reading import find_lot_area, find_zones, read

__all__ = [
    "DISCLAIMER",
    "OFFLINE_MODEL_ID",
    "OfflineResponder",
    "compose_answer",
    "find_lot_area",
    "find_zones",
    "plan_tool_calls",
    "read",
    "tokenize",
]
