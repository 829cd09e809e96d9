"""The prompts the agent gives the LLM: routing, answering, rewriting.

The wording is part of the agent's behaviour (small models follow examples
more than rules): change it only with the eval sets (README.md, "The agent").
"""

from __future__ import annotations

ROUTER_PROMPT = """You route requests for a linac QA assistant used by medical \
physicists. Reply with JSON only. intent is one of:
- protocol: a question about what QA protocols or procedures say (TG-142, \
TG-218, MPPG 9.a, SPC methods, baselines, action levels, QA devices)
- tolerance: asks for the tolerance value of one QA test
- analysis: asks to check, analyse or trend QA measurements of a machine \
(drift, shifts, control chart, is X drifting, how is the output)
- fleet: asks for an overview of all machines or which need attention
- data: asks what QA data, machines or tests are on hand
- small_talk: greetings, thanks
- clinical: about a specific patient's treatment, dose or prescription
- out_of_scope: anything else, or requests to change or delete data
Fill machine, test, energy, frequency, start and end (YYYY-MM-DD) when named.
Examples:
"what is the monthly tolerance for jaw position indicators?" -> \
{"intent": "tolerance", "test": "jaw", "frequency": "monthly"}
"Is the 6X output on TrueBeam 2 drifting?" -> \
{"intent": "analysis", "machine": "TrueBeam 2", "test": "output", "energy": "6X"}
"how do I set up an I-MR chart?" -> {"intent": "protocol"}
"which machines need attention?" -> {"intent": "fleet"}
"what data do we have?" -> {"intent": "data"}
"what dose should I give this patient?" -> {"intent": "clinical"}
"""

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

__all__ = ["REWRITE_PROMPT", "ROUTER_PROMPT",
           "SPAN_PROMPT"]
