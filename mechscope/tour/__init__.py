"""``mechscope tour``: the guided demo's sections, each a function returning lines to print (and data).

Sections: :mod:`~mechscope.tour.basics` (next-token prediction, clamping a residual coordinate),
:mod:`~mechscope.tour.lens` (the logit lens walkthrough) and the grokking lab's own
:mod:`mechscope.labs.grokking.tour`. The CLI face (:mod:`mechscope.cli.tour`) picks and prints them.
"""
