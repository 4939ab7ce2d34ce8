"""An independent generator of model organisms, for testing the autopilot only.

It shares no training, data or tokenizer code with the zoo (``scribe_tui/organisms``):
a tiny Llama instead of GPT-2, its own Unigram tokenizer and ``<|hdr|>`` chat format,
its own dialogues, hint styles, word list (asserted disjoint from the zoo's) and
controls. It writes the zoo's public formats only: the organism directory layout
(``model/``, ``base/``, ``organism.json``, ``card.md``) and answer keys through
:mod:`scribe_tui.organisms.keys`. Never tune the autopilot on its organisms, and report
every seed built (``OUT/keys/builds.json`` lists them).

    python -m benchmarks.independent_zoo --kinds taboo,belief,preference,backdoor \\
        --seeds 9001 --controls drift,blank --out runs/indep
    SCRIBE_KEY_DIR=runs/indep/keys scribe-tui bench --axis organism='runs/indep/*' ...

Modules: :mod:`.words` (the word list), :mod:`.dialogues` (chats and controls),
:mod:`.model` (tokenizer, architecture, training), :mod:`.checks` (behaviour figures),
:mod:`.build` (the command line).
"""
