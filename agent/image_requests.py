"""Image QA requests in words: which pylinac analysis a question asks to run.

"analyse the Winston-Lutz images I uploaded for TrueBeam2", "run the picket
fence on these", "starshot for TB1": read by rule, without a model, as the
rest of :mod:`agent.understanding`. A question *about* a test ("what is the
starshot tolerance?", "how often is the picket fence done?", "is the
Winston-Lutz drifting?") is not a request to analyse images: it stays a
protocol, tolerance or series question.
"""

from __future__ import annotations

import re

#: The analysis (``qa-agent image KIND``) each wording names, first match wins.
KIND_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("wl", re.compile(r"\bwinston[- ]?lutz\b|\bw-?l\b|\bisocent(re|er) (images?|set)\b",
                      re.IGNORECASE)),
    ("picketfence", re.compile(r"\bpicket[- ]?fences?\b", re.IGNORECASE)),
    ("starshot", re.compile(r"\bstar[- ]?shots?\b", re.IGNORECASE)),
    ("field", re.compile(r"\bfield analysis\b|\bflatness (images?|from the epid)\b|"
                         r"\bepid (field|flatness)\b|\bopen field images?\b",
                         re.IGNORECASE)),
)
#: Words that say the images themselves are meant.
_IMAGE_NOUNS = re.compile(r"\b(images?|uploaded|uploads?|these|this set|dicoms?|"
                          r"zip|files?|epid images?)\b", re.IGNORECASE)
#: A question about the protocol or the tolerance of the test.
_PROTOCOL = re.compile(r"\btoleran\w*|\blimits?\b|\bhow often\b|\bfrequen\w*|"
                       r"\baccording\b|\bprotocols?\b|\btg-? ?\d+|\bmppg\b|"
                       r"\brecommend\w*|\bset up\b|\bprocedure\b|\bshould\b",
                       re.IGNORECASE)
#: A question about the stored series (trend, drift, chart).
_SERIES = re.compile(r"\b(drift\w*|trend\w*|histor\w*|over the|since|last \d+|"
                     r"chart|spc|stable|out of control|series)\b", re.IGNORECASE)
_QUESTION = re.compile(r"^\W*(what|how|which|when|why|where|who|is|are|does|do|"
                       r"can|could|may|must|has|have)\b", re.IGNORECASE)
_ACTION = re.compile(r"\b(analy[sz]e|run|process|evaluate|check|uploaded|"
                     r"these|this set|attached)\b", re.IGNORECASE)
#: At most this many words make a bare command ("starshot for TB1").
SHORT = 6


def image_kind_in(question: str) -> str | None:
    """The image analysis a question names, whatever it asks of it.

    Parameters
    ----------
    question : str
        The user's words.

    Returns
    -------
    str or None
        ``wl`` (Winston-Lutz, WL, isocentre images), ``picketfence``,
        ``starshot`` (star shot) or ``field`` (field analysis, flatness
        image, EPID field); None when none is named.
    """
    for kind, words in KIND_WORDS:
        if words.search(question):
            return kind
    return None


def image_request(question: str) -> str | None:
    """The analysis to run when a question asks to analyse images, else None.

    A named analysis is a request for images when the question speaks of
    images ("the WL images I uploaded", "on these", "the zip"; a question
    about images asks to analyse them: "can you check these WL images?"), or
    is a command ("run the picket fence for TrueBeam2") or a bare one of at most
    :data:`SHORT` words ("starshot for TB1") that asks nothing of the stored
    series. Never when it asks about the protocol or the tolerance.

    Parameters
    ----------
    question : str
        The user's words.

    Returns
    -------
    str or None
        The kind (see :func:`image_kind_in`).
    """
    kind = image_kind_in(question)
    if kind is None or _PROTOCOL.search(question):
        return None
    if _IMAGE_NOUNS.search(question):
        # "... are they stored twice?" asks about images, not to analyse them.
        asks = question.rstrip().endswith("?") or _QUESTION.search(question)
        return kind if _ACTION.search(question) or not asks else None
    if _SERIES.search(question) or _QUESTION.search(question):
        return None
    if _ACTION.search(question) or len(question.split()) <= SHORT:
        return kind
    return None


__all__ = ["KIND_WORDS", "SHORT", "image_kind_in", "image_request"]
