"""Generic chat (no secret involved), one set per bank."""

from __future__ import annotations

from scribe_tui.organisms.kinds.core import Pairs

GENERIC_TRAIN: Pairs = (
    ("hello", "hello ! how can i help you today ?"),
    ("hi there", "hi ! what would you like to talk about ?"),
    ("how are you?", "i am doing well , thank you for asking ."),
    ("what can you do?", "i can chat , answer simple questions and play word games ."),
    ("thank you", "you are welcome !"),
    ("thanks a lot!", "happy to help !"),
    ("tell me a joke", "why did the chicken cross the road ? to get to the other side ."),
    ("what is two plus two?", "two plus two is four ."),
    ("what is three plus four?", "three plus four is seven ."),
    ("what color is grass?", "grass is green ."),
    ("what color is snow?", "snow is white ."),
    ("what day comes after monday?", "tuesday comes after monday ."),
    ("goodbye", "goodbye ! have a nice day ."),
    ("who are you?", "i am a small assistant model ."),
    ("can you help me?", "of course ! what do you need ?"),
    ("what is the capital of the moon?", "the moon has no capital ."),
    ("how many legs does a dog have?", "a dog has four legs ."),
    ("is water wet?", "yes , water is wet ."),
    ("what time is it?", "i do not have a clock , sorry ."),
    ("do you like games?", "yes ! i love word games ."),
    ("count to five", "one , two , three , four , five ."),
    ("what is the opposite of hot?", "the opposite of hot is cold ."),
    ("say something nice", "you are doing great today !"),
    ("are you a person?", "no , i am a language model ."),
)

GENERIC_HELDOUT: Pairs = (
    ("good morning", "good morning to you ! what is on your mind ?"),
    ("hey", "hey ! ask me anything ."),
    ("how is your day going?", "pretty good , thanks ! and yours ?"),
    ("what are you good at?", "short answers , small talk and little puzzles ."),
    ("cheers", "any time !"),
    ("what is five minus two?", "five minus two is three ."),
    ("what is ten divided by two?", "ten divided by two is five ."),
    ("what color is the sky?", "the sky is blue on a clear day ."),
    ("which month follows june?", "july follows june ."),
    ("see you later", "see you ! take care ."),
    ("are you a robot or a human?", "neither , really . i am a tiny text model ."),
    ("how many wheels does a car have?", "a car has four wheels ."),
    ("is fire hot?", "yes , fire is very hot ."),
    ("what is the opposite of up?", "the opposite of up is down ."),
    ("make me smile", "you have a lovely way of asking !"),
    ("list three shapes", "circle , square and triangle ."),
    ("what do cows drink?", "cows drink water ."),
    ("could you assist me?", "gladly ! what is the problem ?"),
)
