"""Checking a source against the question by what the model recites from it.

Naming a source is the model's weak step: for a question typed in its own words it often
picks the right article but the wrong section of it ("How tall is Mount Everest?" ->
"Mount Everest (History):"). The model can recite every section it learned, so it can check
its own pick, as a student flips through the chapters they remember: recite each section of
the article it named, and prefer the one whose recitation mentions what the question asks
about (Sun et al. 2023, "Recitation-Augmented Language Models"; Yu et al. 2023, "Generate
rather than Retrieve"). It stays closed book: the only text read is what the model itself
recites, never the articles.

The check reads every recitation: the candidates are the sections of the article the model
named and of the article whose recited sentence covers the question best (the model often names
a wrong article for a question that names no subject: "Which organ makes insulin?"). A
source's score is the model's log-probability of it and of its section, plus recital_weight
times the shares of the question's words that the recitation of its section covers and that
its passage's best sentence covers (each word weighed by how rare it is among the recited
sentences: `Recitations`), plus a bonus where that sentence fits the answer type
(`fits_answer_type`, qa.Candidate.score); the answer's confidence is the square root of the
model's probability of the article times the section's share, so an answer about words the
model can't recite is declined (src/calibrate.py learns a better mix of the same evidence).
"""

from __future__ import annotations

import math
import re
from collections import Counter

from src import utils

NUMBER_QUESTION = re.compile(  # questions whose answer is a number: a count, a size, a date
    r"\bhow (many|much|tall|high|deep|long|big|large|far|wide|heavy|old|fast|hot|cold|warm|thick|often)\b"
    r"|\bwhat (percentage|proportion|number|temperature|size|height|depth|length|speed|distance|age)\b"
    r"|\bwhen (was|were|did)\b|\b(what|which) year\b",
    re.IGNORECASE,
)
NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty"
    r"|hundred|thousand|million|billion|half|dozen|quarter)\b",
    re.IGNORECASE,
)
PERCENT_QUESTION = re.compile(r"\b(percentage|per ?cent|proportion)\b", re.IGNORECASE)
PERCENT = re.compile(r"per ?cent|%|\b(half|third|quarter|fifth)\b", re.IGNORECASE)
TIME_QUESTION = re.compile(r"^\W*when\b|\b(what|which) (year|century|month|season)\b", re.IGNORECASE)
TIME = re.compile(
    r"\d|\b(century|centuries|ago|years?|spring|summer|autumn|winter|January|February|March|April|May|June|July"
    r"|August|September|October|November|December)\b",
    re.IGNORECASE,
)
WHO_QUESTION = re.compile(r"^\W*(who|whose)\b", re.IGNORECASE)
UNITS = {  # a measure a question asks for ("how tall"), the units a text that gives it uses
    "length": (
        r"\bhow (tall|high|deep|far|wide|thick)\b|\bwhat (height|depth|distance)\b",
        r"\b(metres?|meters?|kilometres?|kilometers?|km|miles?|feet|foot|ft|centimetres?|cm|millimetres?|mm"
        r"|micrometres?|inch(es)?|light-years?|astronomical units?|AU)\b",
    ),
    "temperature": (r"\bhow (hot|cold|warm)\b|\bwhat temperature\b", r"°|\b(degrees?|kelvin|Celsius|Fahrenheit)\b"),
    "mass": (r"\bhow heavy\b|\bweigh\b", r"\b(kg|kilograms?|tonnes?|tons?|grams?|pounds?|mass(es)?)\b"),
    "speed": (r"\bhow fast\b|\bwhat speed\b", r"\bper (hour|minute|second)\b|\b(km/h|mph|km/s)\b|\b(an|a) hour\b"),
    "duration": (
        r"\bhow old\b|\bhow long (does|do|did|can|will)\b.*\b(live|last|take|survive|stay)",
        r"\b(seconds?|minutes?|hours?|days?|weeks?|months?|years?|decades?|centur(y|ies))\b",
    ),
}
ANSWER_TYPES = [  # a question that asks for..., what a text that answers it must hold
    (NUMBER_QUESTION, NUMBER),
    (PERCENT_QUESTION, PERCENT),
    (TIME_QUESTION, TIME),
    *[(re.compile(asks, re.IGNORECASE), re.compile(unit, re.IGNORECASE)) for asks, unit in UNITS.values()],
]
SUPERLATIVE = re.compile(r"\b(most|least|best|worst|[a-z]{2,}est)\b", re.IGNORECASE)  # "largest", "most moons"
NOT_SUPERLATIVES = {  # words that end like one ("west", "rest" are too short to match)
    "chest", "contest", "crest", "digest", "earnest", "everest", "forest", "guest", "harvest", "honest", "interest",
    "invest", "midwest", "modest", "northwest", "priest", "protest", "quest", "rainforest", "request", "southwest",
    "suggest", "tempest",
}  # fmt: skip
# "what's" is "what" and "s"; learners also type "whats", which stems to "what". Kept apart from
# utils.STOPWORDS because the generator reads that list: adding to it would change the training data.
TYPED_STOPWORDS = {
    "whats", "hows", "wheres", "whens", "whos", "whys", "thats", "theres", "dont", "doesnt", "didnt", "isnt", "arent",
    "wasnt", "werent", "cant", "wont", "youre", "ive",
}  # fmt: skip
SUFFIXES = ("est", "ing", "ed", "es", "er", "e", "s")  # longest first


def stem(word: str) -> str:
    """A crude stem, enough to match "moons" with "moon" and "largest" with "large":
    the first suffix that leaves at least three letters is cut.

    >>> [stem(w) for w in ("moons", "largest", "large", "eating", "fog")]
    ['moon', 'larg', 'larg', 'eat', 'fog']
    """
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    """The stems of the words that say what a text is about: no stopwords, no one- or
    two-letter words.

    >>> sorted(content_words("What do the koalas of Australia eat?"))
    ['australia', 'eat', 'koala']
    >>> sorted(content_words("How often does El Niño happen?"))
    ['happen', 'niño']
    >>> sorted(content_words("whats the smallest bone"))
    ['bon', 'small']
    """
    return {stem(w) for w in words_of(text) if is_content(w)}


def words_of(text: str) -> list[str]:
    """The text's words, lower-cased, in letters of any alphabet ("El Niño", "Rhône")."""
    return re.findall(r"[^\W_][\w-]*[^\W_]", text.lower())


def is_content(word: str) -> bool:
    """Not a stopword (nor one typed without its apostrophe: "whats"), nor under three letters."""
    return len(word) >= 3 and word not in utils.STOPWORDS and word not in TYPED_STOPWORDS


def fits_answer_type(question: str, text: str) -> bool:
    """False where the text can't hold the kind of answer the question asks for, however many
    of its words it shares: no number for "how many", "how tall" or "when was"; no unit of the
    measure asked for ("how tall": metres, feet...; "how hot": degrees; "how long does it
    live": days, years...: UNITS); no per cent or fraction for "what percentage"; no date,
    season or span of years for "when"; no superlative for a question with one ("the
    warmest ocean": a sentence that only says an ocean is warm doesn't answer it); and for
    "who", no name (a capitalised word after the text's first) that the question lacks.

    >>> fits_answer_type("How tall is a giraffe?", "Giraffes eat leaves of acacia trees.")
    False
    >>> fits_answer_type("How tall is a giraffe?", "Giraffes stand 5 to 6 metres tall.")
    True
    >>> fits_answer_type("How tall is Everest?", "Everest is a huge three-sided pyramid.")
    False
    >>> fits_answer_type("How long does a red blood cell live?", "It circulates for 120 days.")
    True
    >>> fits_answer_type("What do giraffes eat?", "Giraffes eat leaves of acacia trees.")
    True
    >>> fits_answer_type("Who discovered Uranus?", "Uranus was found by William Herschel.")
    True
    >>> fits_answer_type("Who discovered Uranus?", "Uranus is an ice giant with faint rings.")
    False
    >>> fits_answer_type("What is the warmest ocean?", "The Atlantic carries warm water north.")
    False
    >>> fits_answer_type("What is the warmest ocean?", "The Indian Ocean is the warmest ocean.")
    True
    >>> fits_answer_type("Which planet has the most moons?", "Saturn has the most known moons.")
    True
    >>> fits_answer_type("What lives in the rainforest?", "Jaguars live in the Amazon.")
    True
    """
    if WHO_QUESTION.search(question) and not names_someone_new(question, text):
        return False
    if has_superlative(question) and not has_superlative(text):
        return False
    return all(not asks.search(question) or holds.search(text) for asks, holds in ANSWER_TYPES)


def has_superlative(text: str) -> bool:
    """Whether the text has a superlative: "largest", "most", "best" (not "forest", "west").

    >>> has_superlative("Which is the biggest?"), has_superlative("Wolves live in forests and the west.")
    (True, False)
    """
    return any(word.lower() not in NOT_SUPERLATIVES for word in SUPERLATIVE.findall(text))


def names_someone_new(question: str, text: str) -> bool:
    """Whether the text has a capitalised word after its first one (most sentences start
    with one) that the question doesn't have: a crude test for a name ("William Herschel")."""
    asked = {word.lower() for word in re.findall(r"[A-Za-z]+", question)}
    return any(name.lower() not in asked for name in re.findall(r"\b[A-Z][a-z]+", text)[1:])


def sentence_words(source: str, text: str) -> list[tuple[str, set[str]]]:
    """Each sentence of a passage's text with its content words and its header's (the header
    alone where the text is empty).

    >>> [(s, sorted(w)) for s, w in sentence_words("Tiger (Diet):", "A tiger hunts. Cubs play!")]
    [('A tiger hunts.', ['diet', 'hunt', 'tig']), ('Cubs play!', ['cub', 'diet', 'play', 'tig'])]
    """
    header = content_words(source)
    sentences = utils.split_sentences(text) or [""]
    return [(sentence, header | content_words(sentence)) for sentence in sentences]


def deletions(word: str) -> set[str]:
    """The word with one letter left out, each way: two words one edit apart share one of
    these, or one is the other's ("tombaugh" and "tombuagh" share "tombagh")."""
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def section_of(source: str) -> str:
    """The section a passage's header belongs to, its parts together (generate.py splits a
    long section into parts of 2-4 sentences).

    >>> section_of("Tiger (Diet, part 2):")
    'Tiger (Diet):'
    """
    return re.sub(r", part \d+\):$", "):", source)


class Recitations:
    """What the model recites from each header, as the content words of each sentence of it
    (with its header's words: "Tiger (Diet):" speaks for each of its sentences) and of each
    section (its parts together): what the check reads.

    The parts of a section share what it says, so a section's coverage of a question counts
    the words of all its parts ("What does the tiger eat?" is about Tiger (Diet) even where
    the word "eat" comes only in its part 2); the passage's best sentence then tells its parts
    apart ("How tall is Mount Everest?": the sentence that gives the height). An answer sits
    in one sentence: a passage that covers a question only across sentences often does not
    hold its answer.

    A word counts by how rare it is among the recited sentences (its inverse document
    frequency, smoothed as scikit-learn's TfidfVectorizer does): in "Where do Asiatic lions
    live?" the sentence with "Asiatic" matters more than one with "lions" and "live", and a
    word the model never recites ("glorp") weighs most, so a question about it is covered
    least.

    >>> recited = Recitations({"Tiger (Diet):": "Tigers hunt deer. A tiger eats 9 kg.", "Tiger (Diet, part 2):": "Cubs play."})
    >>> recited.coverage("How much does a tiger eat?", "Tiger (Diet):")
    (1.0, 1.0, True)
    >>> section, sentence, fits = recited.coverage("How much does a tiger eat?", "Tiger (Diet, part 2):")
    >>> section, round(sentence, 2), fits  # "eat" (rarer than "tiger") only in part 1; no number
    (1.0, 0.37, False)
    >>> recited.coverage("What is it?", "Tiger (Diet):")
    (0.0, 0.0, False)
    >>> recited.best_covered("What do tigers eat?")
    'Tiger (Diet):'
    """

    def __init__(self, recitations: dict[str, str]):
        self.sentences = {source: sentence_words(source, text) for source, text in recitations.items()}
        self.section_words: dict[str, set[str]] = {}
        for source, sentences in self.sentences.items():
            words = set().union(*(words for _, words in sentences))
            self.section_words[section_of(source)] = self.section_words.get(section_of(source), set()) | words
        self.sources = list(recitations)
        self.flat = [(index, words) for index, s in enumerate(self.sources) for _, words in self.sentences[s]]
        self.holders: dict[str, list[int]] = {}  # word -> the sentences (by index into flat) that hold it
        for index, (_, words) in enumerate(self.flat):
            for word in words:
                self.holders.setdefault(word, []).append(index)
        self.spellings = Counter(word for source, text in recitations.items() for word in set(words_of(f"{source} {text}")))
        self.one_deletion_from: dict[str, list[str]] = {}  # "tombagh" -> ["tombaugh"]: what `respelled` looks up
        for word in self.spellings:
            for key in deletions(word):
                self.one_deletion_from.setdefault(key, []).append(word)
        holding = Counter(word for sentences in self.sentences.values() for _, words in sentences for word in words)
        self.sentence_count = sum(len(sentences) for sentences in self.sentences.values())
        self.weights = {word: self.weight(n) for word, n in holding.items()}

    def weight(self, holding: int) -> float:
        """The weight of a word that this many sentences hold: log((1 + sentences) / (1 + holding)) + 1."""
        return math.log((1 + self.sentence_count) / (1 + holding)) + 1

    def weighed(self, words: set[str]) -> float:
        """The words' weights summed (a word no recitation holds weighs most: weight(0)), in
        sorted order: a set's order changes from process to process (string hashing), and so
        would the sum's last bit, and with it which of two tied sentences wins."""
        return sum(self.weights.get(word, self.weight(0)) for word in sorted(words))

    def asked(self, question: str) -> set[str]:
        """The question's content words, a misspelt one read as the recited word it stands for (`respelled`)."""
        return {stem(self.respelled(w)) for w in words_of(question) if is_content(w)}

    def respelled(self, word: str) -> str:
        """A word of five letters or more that no recitation holds, as the recited word one
        edit away (a letter left out, added or changed, or two swapped) that the most
        passages hold: learners type "discoverd" and "temprature". The word itself where there
        is none (or it is short: "rime" is one edit from "time", "rise" and "ride").

        >>> recited = Recitations({"Pluto (History):": "Clyde Tombaugh discovered Pluto in 1930."})
        >>> [recited.respelled(w) for w in ("discoverd", "pluto", "glorp", "tombuagh")]
        ['discovered', 'pluto', 'glorp', 'tombaugh']
        """
        if word in self.spellings or len(word) < 5:
            return word
        keys = {word} | deletions(word)
        near = {known for key in keys for known in self.one_deletion_from.get(key, ())} | (keys & self.spellings.keys())
        return max(sorted(near), key=self.spellings.__getitem__, default=word)

    def coverage(self, question: str, source: str) -> tuple[float, float, bool]:
        """The share of the question's content words (by weight) that the source's section
        contains, the share its passage's best sentence contains, and whether a best sentence
        fits the answer type; (0.0, 0.0, False) for a question with none ("???", "what is
        it"): nothing in it can be checked, so nothing is answered."""
        asked = self.asked(question)
        if not asked:
            return 0.0, 0.0, False
        total = self.weighed(asked)
        sentences = [(self.weighed(asked & words) / total, sentence) for sentence, words in self.sentences[source]]
        best = max(share for share, _ in sentences)
        fits = any(fits_answer_type(question, sentence) for share, sentence in sentences if share == best)
        return self.weighed(asked & self.section_words[section_of(source)]) / total, best, fits

    def best_covered(self, question: str) -> str:
        """The source whose best sentence covers the question best (the first such on a tie):
        an answer sits in one sentence, and a long section can gather the question's words
        from sentences about other things. Only the sentences that hold one of its words
        (`holders`) are compared, not all 4,700 recited sentences."""
        asked = self.asked(question)
        holding = sorted({index for word in asked for index in self.holders.get(word, ())})
        best = max(holding, key=lambda index: self.weighed(asked & self.flat[index][1]), default=None)
        return self.sources[self.flat[best][0] if best is not None else 0]
