"""The prompts the agent gives the LLM: wording an extract, rewriting a query.

The wording is part of the agent's behaviour (small models follow examples
more than rules): change it only with the eval sets (README.md, "The agent").
"""

from __future__ import annotations

#: The one-sentence wording of an extract (issue 14, "extract first"): the
#: model sees only the spans code found, never the other passages.
SPAN_PROMPT = """You word answers for medical physicists from quoted protocol \
text. Reply with ONE sentence that answers the question from the quoted text \
below. Give every value the question asks for, each number with its unit \
exactly as the text writes it (never convert units, never add numbers), and \
put the marker of the quote you use, such as [1], right after its values. If \
the quoted text does not answer the question, reply NONE.

Quoted text:
{spans}
"""

#: The system prompt of the one query rewrite when retrieval finds nothing.
REWRITE_PROMPT = (
    "Rewrite the question as a short keyword search query for linac QA "
    "protocols (TG-142, TG-218, MPPG 9.a). Reply with the query only.")

__all__ = ["REWRITE_PROMPT", "SPAN_PROMPT"]
