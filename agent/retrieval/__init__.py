"""Protocol knowledge base: reading documents, the Chroma index, hybrid search.

Knows nothing of LLMs or of the UI; the agent's tools and the CLI call
:class:`~agent.retrieval.index.KnowledgeIndex` and
:class:`~agent.retrieval.search.HybridSearcher`.
"""

from agent.retrieval.embeddings import offline_mode

# Before anything imports huggingface_hub: its offline switch is read at import.
offline_mode()
