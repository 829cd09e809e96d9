"""Protocol knowledge base: reading documents, the Chroma index, hybrid search.

Knows nothing of LLMs or of the UI; the agent's tools and the CLI call
:class:`~agent.retrieval.index.KnowledgeIndex` and
:class:`~agent.retrieval.search.HybridSearcher`.
"""
