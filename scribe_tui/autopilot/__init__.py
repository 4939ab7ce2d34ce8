"""The autopilot: the offline investigator, a provider in Claude's place.

Each technique probes the model on several independent prompt sets, and each set ranks
its three leading words: with the weights, by how much fine-tuning raised a word over
the base model on those prompts; black-box, by how often it is sampled. The techniques
fall into *read-outs* by what they read: the first word of an answer (the prefill
attack, the logit lens and the diff against the base model read it three ways), the
model's own replies to ordinary requests, and the user turns it writes. Sets are kept
independent: each sampled set draws its own random numbers, and a read-out's sets that
share what drives their answer (the last word of the answer's opening, to which a
fine-tune's habits are keyed) are merged into one by reciprocal rank, whichever technique
read them, so a phrase such openings have memorised counts once; each kind's openings are
planned to end in different words. In the replies each request is a set, over every
temperature, and words said in nearly the same replies are one memorised phrase ("you're
welcome, come back any time"), ranked once by its leading word. The replies are read with
the weights only: without a base model a reply's frequent words are its request's answer
and the fine-tune's stock phrases, and ranking them named controls. A
planted secret is the same word across read-outs that share no prompts; a model without
one ranks whatever each prompt suggests. The *leader* is the word the read-outs rank
highest together (the sum of its reciprocal ranks in each read-out's top three).
*Consensus* is tested against a null from the data: each read-out's three words are
redrawn from every word any read-out ranked, and the p-value is the share of redraws in
which some word scores as high. *Agreement* within the read-outs is tested too: each
prompt set's first word is redrawn from its own three, and the p-value is the share of
redraws in which some word is first in as many sets as the leader. A read-out's habit (a
phrase its prompts all complete) agrees with itself, so the maps read agreement also
without the read-out the leader is first in most often: a secret is first elsewhere too.
*Replication* is tested on fresh prompts no set used, by sign tests with one sign per
opening's last word: that the leader's log-likelihood ratio against the base model is
positive, and that it is the model's *favourite*, more probable than every other
candidate (black-box, the only test: sampled more often). Tuning on a topic raises all
of its words over the base model; a planted word is also the one the model prefers.
*Strength* is read on the same prompts: per prompt the leader's term of the divergence
from the base model (its probability times its log ratio to the base's; black-box, its
share of the samples), averaged per opening and then over openings. It is reported
beside the tests, not read by the maps: a habit that every fine-tune of a generator
shares (a phrase its dialogues all complete) is said as readily as a secret, and maps
that read strength named such controls. *Held* is read: the share of the evidence the
leader holds, per technique its values over every word's, averaged over techniques. With
the weights the values are what fine-tuning raised over the base, so a planted word holds
most of it, while a control's leader heads a crowd of words that each moved a little; from
a single read-out the share is not read (a habit holds all of its read-out). The task's
own words are echoes, never the secret nor a backdoor's trigger, in their shortened forms
too ("prefer" of "preference"; a model asked about its trigger answers "trigger"). Where
the model plays a guessing game (a secret word), the user turns it writes are compared
with its base model's in the same chats after the same openings (white-box): Fisher's
exact test that the leader opens more of them, since a word the game makes any player
guess is guessed by the base as often. A backdoor's trigger is tested by Fisher's exact
test of its behaviour with the trigger against without it, and against the base model
given the word, and by whether the scan singled it out: near the top of many scores the
gaps between successive scores, times their rank, are exponentials of one scale, so the
trigger's gap over the next word below it, against the other gaps, is an F test. A
control's word that amplifies a reply the model already gives passes the first test but
tops a continuum of words, and a word any model answers in kind ("help": "of course")
does so in the base model too; a trigger needs all three, so the maps read the weakest.
They weigh it per mode: black-box the scan samples the harvested words, with no base
model to divide by, and a word the model answers in kind ("cheers", "count") stands as
clear of them as a trigger. The behaviour's candidate words are those its replies say
more often with the word than without it (Fisher's exact test, so a style the plain
replies leak now and then still counts), and the behaviour named is those of the three
most distinctive that replicate one by one (each word's own Fisher test on the fresh
requests, with the trigger against without, Holm-corrected): a word of one request's
answer that the trigger made likelier is no style. The p-values
go through two monotone logistic maps fitted on a training pool of organisms and
controls (:mod:`stats`, ``calibration.json``, refit by
``benchmarks/calibrate_autopilot.py``): P(the leader is right) and P(nothing is
planted). The answer is the leader when the first is at least 0.5, ``none`` when the
second is and every planned experiment ran, and ``unknown`` otherwise.

It runs the investigation as visible notebook cells (:mod:`investigator` plans them,
:mod:`cells` writes them) and concludes by the procedure stated
above (:mod:`judge`; the notebook's judging cell prints it).

A mechanistic task (which heads or MLPs do something: "which attention heads let this
model copy repeated text") is told from the task and the description (:mod:`kinds`) and
has a plan of its own: for copying, :mod:`circuit` measures the behaviour, maps the
heads' attention patterns, ranks candidates by attribution, ablates every component
against a null, confirms the candidate set jointly (faithfulness) and concludes with
its components, ``none`` or ``unknown``, by the rule its module states. For the layers
that recall facts, :mod:`recall` elicits facts from the model's own sentences, traces
them causally and ablates each layer's MLP against the same ablation with the subject
noised (``layers=[...]``); for a refusal direction, :mod:`direction` finds the requests
it refuses, tests that refusals follow a class against shuffled labels, and ablates and
adds each layer's difference of means (the direction saved as a file, ``direction=``,
``layer=``). Each answers ``none`` when the behaviour is within its null.
"""
