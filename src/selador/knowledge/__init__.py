"""Knowledge base: Bedrock Knowledge Base in AWS, a bundled ranked index of Markdown offline."""

from selador.knowledge.base import KnowledgeBase, KnowledgeBaseError, Passage

__all__ = ["KnowledgeBase", "KnowledgeBaseError", "Passage"]
