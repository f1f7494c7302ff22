"""Question phrasings for the generate stage: how people ask about an article's sections
and about the single facts inside them.

Two kinds of rule, both plain string patterns a learner can read and extend:
  - section phrasings: per domain and section heading ("What does {s} eat?" for an
    animal's Diet section), asked with every name of the subject: the lead's name, the
    title and the article's aliases ("koalas", "the Red Planet");
  - sentence patterns: a sentence of the article that states a superlative ("X is the
    largest Y"), a measure ("8,849 metres"), a count ("has 95 moons"), a discovery, or
    something about the subject ("The pancreas makes insulin") gets the questions that
    sentence answers ("What is the largest Y?", "How tall is X?", "Does the pancreas make
    insulin?", "What does the pancreas make?", "Which organ makes insulin?").
A heading from a real article is first mapped onto a domain's headings (src/headings.py:
"Hunting and diet" -> Diet); one that maps to nothing is asked about with GENERIC phrasings.
To support a new heading, add its phrasings here and list it in corpus/README.md.
Placeholders: {s} the subject; {is}, {does}, {has} agree with it ("is"/"are", ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from src.headings import canonical_heading
from src.utils import STOPWORDS

LEAD = [
    "What is {s}?",
    "What {is} {s}?",
    "Tell me about {s}.",
    "What do you know about {s}?",
    "Explain {s}.",
    "Can you describe {s}?",
    "Give me a short description of {s}.",
    "{S}?",
    "Who or what {is} {s}?",
    "Describe {s}.",
]

TEMPLATES: dict[str, dict[str, list[str]]] = {
    "astronomy": {
        "Physical characteristics": [
            "What are the physical characteristics of {s}?",
            "What {is} {s} like?",
            "How big {is} {s}?",
            "Describe {s}.",
            "What does {s} look like?",
            "How large {is} {s}?",
            "What kind of object {is} {s}?",
        ],
        "Formation": [
            "How did {s} form?",
            "How {is} {s} formed?",
            "Where did {s} come from?",
            "What is the origin of {s}?",
            "When did {s} form?",
            "How {does} {s} form?",
            "How was {s} made?",
        ],
        "Composition": [
            "What is {s} made of?",
            "What {is} {s} made of?",
            "What is inside {s}?",
            "What is the composition of {s}?",
            "What material makes up {s}?",
            "Is {s} made of gas or rock?",
            "What does {s} consist of?",
        ],
        "Orbit": [
            "What is the orbit of {s} like?",
            "How long does a year on {s} last?",
            "How does {s} move?",
            "Describe the orbit of {s}.",
            "How far away {is} {s}?",
            "What does {s} orbit?",
            "How long does {s} take to go around?",
        ],
        "Observation": [
            "How can {s} be observed?",
            "Can you see {s} from Earth?",
            "How do astronomers observe {s}?",
            "Can {s} be seen with the naked eye?",
            "How do we see {s}?",
            "Who discovered {s}?",
            "What can be seen of {s}?",
        ],
        "Exploration": [
            "How has {s} been explored?",
            "Which spacecraft visited {s}?",
            "Which missions have studied {s}?",
            "Has anyone been to {s}?",
            "What missions went to {s}?",
            "Have probes visited {s}?",
            "How was {s} explored?",
        ],
    },
    "anatomy": {
        "Structure": [
            "What is the structure of {s}?",
            "What are the parts of {s}?",
            "What {is} {s} made of?",
            "What does {s} look like?",
            "How {is} {s} built?",
            "Describe the structure of {s}.",
            "How big {is} {s}?",
        ],
        "Location": [
            "Where is {s} located?",
            "Where {is} {s}?",
            "Where in the body {is} {s}?",
            "Where is {s} found in the human body?",
            "Where would I find {s}?",
            "What is {s} next to?",
            "In which part of the body {is} {s}?",
        ],
        "Function": [
            "What does {s} do?",
            "What {does} {s} do?",
            "What is the function of {s}?",
            "What is the role of {s} in the body?",
            "Why do we need {s}?",
            "What {is} {s} for?",
            "How {does} {s} work?",
        ],
        "Clinical significance": [
            "What diseases affect {s}?",
            "What can go wrong with {s}?",
            "What is the clinical significance of {s}?",
            "What illnesses affect {s}?",
            "What problems can {s} have?",
            "What happens when {s} fails?",
            "Which disorders affect {s}?",
        ],
    },
    "animals": {
        "Description": [
            "What does {s} look like?",
            "What {does} {s} look like?",
            "Describe the appearance of {s}.",
            "How big {is} {s}?",
            "How heavy {is} {s}?",
            "What are the physical features of {s}?",
            "What colour {is} {s}?",
        ],
        "Habitat": [
            "Where does {s} live?",
            "Where {does} {s} live?",
            "What is the habitat of {s}?",
            "Where can you find {s}?",
            "In what kind of places {is} {s} found?",
            "Where in the world {does} {s} live?",
            "Where {is} {s} found?",
        ],
        "Diet": [
            "What does {s} eat?",
            "What {does} {s} eat?",
            "What is the diet of {s}?",
            "What food {does} {s} eat?",
            "What {does} {s} feed on?",
            "How {does} {s} get food?",
            "What {does} {s} hunt?",
        ],
        "Behaviour": [
            "How does {s} behave?",
            "How {does} {s} behave?",
            "What is the behaviour of {s} like?",
            "Do {p} live in groups?",
            "Describe the behaviour of {s}.",
            "How {does} {s} spend the day?",
            "{Is} {s} social?",
        ],
        "Reproduction": [
            "How does {s} reproduce?",
            "How {does} {s} reproduce?",
            "How are the young of {s} born and raised?",
            "How {does} {s} have babies?",
            "How many young {does} {s} have?",
            "Describe the reproduction of {s}.",
            "How {does} {s} raise its young?",
        ],
        "Conservation": [
            "Is {s} endangered?",
            "{Is} {s} endangered?",
            "What is the conservation status of {s}?",
            "What threats {does} {s} face?",
            "{Is} {s} at risk of extinction?",
            "How many {p} are left?",
            "Why {is} {s} threatened?",
        ],
    },
    "geography": {
        "Location": [
            "Where is {s}?",
            "Where {is} {s}?",
            "Where is {s} located?",
            "In which part of the world {is} {s}?",
            "Which continent {is} {s} in?",
            "Where {is} {s} on the map?",
            "What borders {s}?",
        ],
        "Landscape": [
            "What is the landscape of {s} like?",
            "What does {s} look like?",
            "Describe the geography of {s}.",
            "What landforms are found in {s}?",
            "How big {is} {s}?",
            "What is the terrain of {s}?",
            "How high {is} {s}?",
        ],
        "Climate": [
            "What is the climate of {s}?",
            "What is the weather like in {s}?",
            "How hot {is} {s}?",
            "Describe the climate of {s}.",
            "How cold does {s} get?",
            "Does it rain much in {s}?",
            "What are the seasons like in {s}?",
        ],
        "Wildlife": [
            "What animals live in {s}?",
            "What wildlife is found in {s}?",
            "Describe the wildlife of {s}.",
            "What lives in {s}?",
            "Which animals can you see in {s}?",
            "What plants grow in {s}?",
            "What creatures live in {s}?",
        ],
        "Population": [
            "How many people live in {s}?",
            "What is the population of {s}?",
            "Who lives in {s}?",
            "Does anyone live in {s}?",
            "What languages are spoken in {s}?",
            "How many people are in {s}?",
            "What are the people of {s} like?",
        ],
        "Economy": [
            "What is the economy of {s} like?",
            "What are the main industries of {s}?",
            "How do people in {s} make a living?",
            "What does {s} produce?",
            "How do people use {s}?",
            "What is {s} important for?",
            "What jobs do people in {s} do?",
        ],
    },
    "chemistry": {
        "Structure": [
            "What is the structure of {s}?",
            "How is {s} built up?",
            "Describe the structure of {s}.",
            "What does {s} look like at the atomic level?",
            "What is the formula of {s}?",
            "How are the atoms in {s} arranged?",
            "What is {s} made of?",
        ],
        "Properties": [
            "What are the properties of {s}?",
            "What {is} {s} like?",
            "Describe the properties of {s}.",
            "What colour {is} {s}?",
            "{Is} {s} a gas, liquid or solid?",
            "At what temperature {does} {s} melt or boil?",
            "What are the characteristics of {s}?",
        ],
        "Occurrence": [
            "Where is {s} found?",
            "Where does {s} occur in nature?",
            "How common {is} {s}?",
            "Where {does} {s} come from?",
            "Where can you find {s}?",
            "Is there {s} in nature?",
            "Where {is} {s} found?",
        ],
        "Reactions": [
            "How does {s} react?",
            "What reactions does {s} take part in?",
            "Describe the chemical reactions of {s}.",
            "What happens when {s} reacts?",
            "{Is} {s} reactive?",
            "What {does} {s} react with?",
            "How {does} {s} react?",
        ],
        "Uses": [
            "What is {s} used for?",
            "What {is} {s} used for?",
            "What are the uses of {s}?",
            "How do people use {s}?",
            "Why is {s} useful?",
            "What can you do with {s}?",
            "Where {is} {s} used?",
        ],
        "History": [
            "What is the history of {s}?",
            "How was {s} discovered?",
            "Who discovered {s}?",
            "Who first studied {s}?",
            "When was {s} discovered?",
            "Who named {s}?",
            "When {was} {s} first described?",
        ],
    },
    "weather": {
        "Formation": [
            "How does {s} form?",
            "How {does} {s} form?",
            "What causes {s}?",
            "How is {s} formed?",
            "Why {does} {s} happen?",
            "What makes {s}?",
            "How {is} {s} made?",
        ],
        "Characteristics": [
            "What are the characteristics of {s}?",
            "What {is} {s} like?",
            "What are the features of {s}?",
            "What does {s} look like?",
            "How big {is} {s}?",
            "Describe {s}.",
            "How long {does} {s} last?",
        ],
        "Occurrence": [
            "Where does {s} occur?",
            "Where {does} {s} occur?",
            "When and where does {s} happen?",
            "How common {is} {s}?",
            "When {does} {s} happen?",
            "Where {is} {s} most common?",
            "In which season {does} {s} happen?",
        ],
        "Effects": [
            "What are the effects of {s}?",
            "What damage can {s} cause?",
            "How does {s} affect people?",
            "{Is} {s} dangerous?",
            "What {does} {s} do to crops?",
            "Why {is} {s} dangerous?",
            "What harm can {s} do?",
        ],
        "Safety": [
            "How can people stay safe during {s}?",
            "What safety precautions should be taken for {s}?",
            "How do you protect yourself from {s}?",
            "What should I do during {s}?",
            "How can I stay safe in {s}?",
            "What to do in {s}?",
            "How do people prepare for {s}?",
        ],
    },
}

# What kind of thing a domain's subjects are, for inverse questions ("Which animal ...?").
DOMAIN_KIND = {
    "astronomy": "object in space",
    "anatomy": "part of the body",
    "animals": "animal",
    "geography": "place",
    "chemistry": "substance",
    "weather": "weather phenomenon",
}


@dataclass(frozen=True)
class Name:
    """One way to name a subject in a question, with the verb forms that agree with it."""

    text: str
    plural: bool = False

    def fill(self, template: str) -> str:
        verbs = {"is": "are", "does": "do", "has": "have", "was": "were"} if self.plural else {}
        words = {w: verbs.get(w, w) for w in ("is", "does", "has", "was")}
        filled = template.format(
            s=self.text, S=self.text, p=self.text, **words, Is=words["is"].capitalize(), Does=words["does"].capitalize()
        )
        return capitalize(filled)


def looks_plural(alias: str, title: str) -> bool:
    """'koalas' for 'Koala', 'tigers' for 'Tiger': a plural alias takes 'are', 'do', 'have'."""
    alias, title = alias.lower(), re.sub(r"\s*\(.*?\)", "", title).lower()
    return alias.endswith("s") and not alias.endswith(("ss", "us", "is")) and not title.endswith("s")


GENERIC = [  # for a heading no domain phrasing fits: '{h}' is the heading in lower case
    "What about the {h} of {s}?",
    "Tell me about {s}: {h}.",
    "What is known about the {h} of {s}?",
    "Describe the {h} of {s}.",
]


def section_questions(domain: str, heading: str, names: list[Name]) -> list[str]:
    """Every phrasing of a section's question with every name of the subject. A heading is
    first mapped onto the domain's vocabulary (src/headings.py: 'Hunting and diet' -> Diet);
    one that maps to nothing is asked about by name with the GENERIC phrasings.

    >>> section_questions("animals", "Diet", [Name("the tiger")])[0]
    'What does the tiger eat?'
    >>> section_questions("animals", "Taxonomy", [Name("the tiger")])[0]
    'What about the taxonomy of the tiger?'
    """
    canonical = heading if heading == "Lead" else canonical_heading(domain, heading)
    if canonical is None:
        templates = [t.replace("{h}", heading.lower()) for t in GENERIC]
    else:
        templates = LEAD if canonical == "Lead" else TEMPLATES[domain][canonical]
    # A template with {p} asks about the animals as a group: only plural names fit it.
    return [name.fill(t) for t in templates for name in names if "{p}" not in t or name.plural]


# ---------------------------------------------------------------- questions from one sentence

SUPERLATIVE = re.compile(
    r"\b(?:is|are|was) (?:also )?(?:the|one of the) ((?:second |third |fourth )?(?:second-|third-)?"
    r"(?:\w+est|most \w+|least \w+|only \w+|first \w+)(?: [\w-]+){0,6}?)(?=[,.;]| and | which | that | with | after )"
)
PHRASE_END = r"(?: [\w-]+){0,6}?)(?=[,.;]| and | which | that | with | of any | after )"  # a superlative's words
SUPERLATIVE_ELSEWHERE = re.compile(r"(?:\band|, making it|, being) (?:the|one of the) ((?:\w+est|most \w+)" + PHRASE_END)
HAS_SUPERLATIVE = re.compile(r"\b(?:has|have) (?:the|one of the) ((?:\w+est|most \w+)" + PHRASE_END)  # 'has the most moons'
MEASURE_WORDS = [  # (words in the sentence, question about the subject)
    (
        r"\b(?:tall|high|height|altitude)\b.*\b(?:metres|meters|feet|km|kilometres)\b|\b(?:metres|meters|feet)\b.*\b(?:tall|high)\b",
        "How tall {is} {s}?",
    ),
    (
        r"\b(?:long|length)\b.*\b(?:kilometres|km|miles|metres)\b|\b(?:kilometres|km|miles|metres)\b.*\blong\b",
        "How long {is} {s}?",
    ),
    (r"\bdeep\b|\bdepth\b", "How deep {is} {s}?"),
    (r"\b(?:kilograms|kg|tonnes|grams|pounds)\b|\bweigh", "How heavy {is} {s}?"),
    (r"°C|degrees|\bhot\b|\btemperature", "How hot {is} {s}?"),
    (r"\b(?:km/h|kilometres per hour|miles per hour|mph)\b", "How fast {is} {s}?"),
    (r"\b(?:diameter|across|wide|width|square kilometres|km2|area)\b", "How big {is} {s}?"),
    (r"\b(?:billion|million) years\b|\byears old\b", "How old {is} {s}?"),
    (r"\bper cent\b|%", "What percentage of {s} is it?"),
]
COUNT = re.compile(
    r"\b(?:has|have|had|contains?|with) (?:about |around |roughly |more than |over |nearly |almost |at least |some |up to )?"
    r"(\d[\d,.]*(?: thousand| million| billion| trillion)?|two|three|four|five|six|seven|eight|nine|ten|twelve"
    r"|dozens of|hundreds of|thousands of|millions of) "
    r"(?:[a-z-]+ )?([a-z]+s)\b"
)
DISCOVERY = re.compile(r"\b(?:was|were) (discovered|identified|isolated|named|first described|first observed|first seen)\b")
AUXILIARIES = {"is", "are", "was", "were", "can", "cannot", "could", "may", "must", "will"}
ADVERBS = set("also usually often typically generally sometimes frequently mainly mostly largely always normally".split())
NOUN_SIGNS = {"is", "are", "was", "were", "can", "have", "has", "of", "and"}  # 'Carbon compounds are ...': no verb
PREPOSITIONS = {"with", "to", "on", "in", "into", "from", "for", "at", "about", "like", "through"}
CLAUSE_END = re.compile(r"[,.;:](?!\d)| and | which | while | when | because | so that | but ")  # '8,849' is one number


class Statement(NamedTuple):
    """A sentence that says something about the subject: 'The pancreas also makes insulin, ...'
    -> Statement(Name('the pancreas'), verb='makes', rest='insulin')."""

    name: Name
    verb: str
    rest: str


def subject_opening(sentence: str, names: list[Name]) -> tuple[Name, str] | None:
    """The subject's name a sentence opens with (or 'It'/'They', which in an article mean the
    subject), and the words after it; None if it opens with something else."""
    lowered = sentence.lower()
    name, after = None, ""
    for candidate in sorted(names, key=lambda n: -len(n.text)):
        for article in ("", "the ", "a ", "an "):
            opening = f"{article}{candidate.text.lower()} "
            if lowered.startswith(opening):
                name, after = candidate, sentence[len(opening) :]
                break
        if name:
            break
    pronoun = lowered.split(" ", 1)[0]
    if name is None and pronoun in ("it", "they") and names:
        plural = [n for n in names if n.plural] if pronoun == "they" else [n for n in names if not n.plural]
        name, after = (plural or names)[0], sentence.split(" ", 1)[1]
    return (name, after) if name else None


def statement_of(sentence: str, names: list[Name]) -> Statement | None:
    """The subject, verb and the rest of the first clause, if the sentence opens with a name
    of the subject (subject_opening); else None."""
    opening = subject_opening(sentence, names)
    if opening is None:
        return None
    name, after = opening
    clause = CLAUSE_END.split(after, maxsplit=1)[0]
    words = clause.split()
    while words and words[0] in ADVERBS:
        words = words[1:]
    if len(words) < 2 or not words[0].isalpha() or not words[0].islower() or words[1] in NOUN_SIGNS:
        return None
    if after[len(clause) : len(clause) + 1] == "," and len(words) <= 3 and words[1] in ("a", "an", "the"):
        return None  # 'is a slender, spotted wild cat': the comma cut a noun phrase after its adjective
    return Statement(name, words[0], " ".join(words[1:13]))


def base_form(verb: str) -> str:
    """'makes' -> 'make', 'carries' -> 'carry', 'reaches' -> 'reach', 'lies' -> 'lie'."""
    if verb in ("lies", "dies", "ties"):
        return verb[:-1]
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    if verb.endswith(("ches", "shes", "sses", "xes", "zes", "oes")):
        return verb[:-2]
    return verb[:-1]


def statement_questions(statement: Statement, kind: str, domain: str) -> list[str]:
    """Yes/no, object and inverse questions about one statement:
    'The pancreas makes insulin' -> 'Does the pancreas make insulin?', 'What does the pancreas
    make?', 'Which organ makes insulin?'."""
    name, verb, rest = statement
    kinds = list(dict.fromkeys([kind, DOMAIN_KIND[domain]]))
    if verb in AUXILIARIES:
        auxiliary = "can" if verb == "cannot" else verb
        inverse = not name.plural and verb not in ("are", "were")
        return [f"{auxiliary} {name.text} {rest}?"] + [f"Which {k} {verb} {rest}?" for k in kinds if inverse]
    if verb in ("has", "have") and rest.startswith("been "):  # 'Earth has been studied ...'
        return [f"{verb} {name.text} {rest}?"]
    if verb in ("has", "have"):
        return [name.fill(f"{{Does}} {{s}} have {rest}?")] + [f"Which {k} has {rest}?" for k in kinds if not name.plural]
    if name.plural and not verb.endswith(("s", "ed", "ing")):
        base, inverse = verb, []
    elif not name.plural and verb.endswith("s") and not verb.endswith("ss"):
        base, inverse = base_form(verb), [f"Which {k} {verb} {rest}?" for k in kinds]
    else:
        return []
    preposition = rest.split()[0] if rest.split()[0] in PREPOSITIONS else ""  # 'What do acids react with?'
    return [
        name.fill(f"{{Does}} {{s}} {base} {rest}?"),
        name.fill(f"What {{does}} {{s}} {base} {preposition}".strip() + "?"),
    ] + inverse


def sentence_questions(sentence: str, names: list[Name], domain: str, kind: str) -> list[str]:
    """The questions a single sentence answers, from the patterns above (often none).

    >>> sentence_questions("Jupiter has 95 known moons.", [Name("Jupiter")], "astronomy", "planet")[:3]
    ['How many moons does Jupiter have?', 'Does Jupiter have 95 known moons?', 'Which planet has 95 known moons?']
    """
    questions: list[str] = []
    about_subject = subject_opening(sentence, names) is not None
    superlative = SUPERLATIVE.search(sentence) or (about_subject and SUPERLATIVE_ELSEWHERE.search(sentence))
    if superlative:
        phrase = superlative.group(1)
        questions += [f"What is the {phrase}?", f"Which {kind} is the {phrase}?"]
    has_superlative = about_subject and HAS_SUPERLATIVE.search(sentence)
    if has_superlative:
        questions += [f"Which {kind} has the {has_superlative.group(1)}?"]
    for words, template in MEASURE_WORDS:
        if re.search(r"\d", sentence) and re.search(words, sentence):
            questions += [name.fill(template) for name in names]
            break
    count = COUNT.search(sentence)
    if count:
        noun = count.group(2)
        questions += [name.fill(f"How many {noun} {{does}} {{s}} have?") for name in names]
    discovery = DISCOVERY.search(sentence)
    if discovery:
        verb = discovery.group(1)
        questions += [name.fill(f"When {{was}} {{s}} {verb}?") for name in names[:2]]
        if " by " in sentence:
            questions += [name.fill(f"Who {verb.split()[-1]} {{s}}?") for name in names[:2]]
    statement = statement_of(sentence, names)
    if statement:
        questions += statement_questions(statement, kind, domain)
    return list(dict.fromkeys(capitalize(q) for q in questions))


def names_no_subject(question: str, names: list[Name]) -> bool:
    """True for a question that names none of the subject's names ('What is the fastest land
    animal?', 'Which organ makes insulin?'): the only kind that leads from a fact to a subject
    the question doesn't name, so a passage's sample takes these first."""
    lowered = question.lower()
    return not any(re.search(rf"\b{re.escape(name.text.lower())}\b", lowered) for name in names)


KEYWORD_TEMPLATES = ["Tell me about {kw} and {s}.", "What about {s} and {kw}?", "{S}: {kw}?"]


def words_of(text: str) -> set[str]:
    """The distinct lower-case words of 4+ letters in text: what a look-up can be about."""
    return set(re.findall(r"[a-z][a-z-]{3,}", text.lower()))


def keyword_questions(text: str, names: list[Name], frequency: dict[str, int]) -> list[str]:
    """Plain look-up questions built on a passage's rarest words ('Tell me about digest and
    the koala.'): they teach the model which passage holds a word, so a question about a
    detail deep in a section still finds it."""
    words = words_of(text) - STOPWORDS
    keywords = sorted(words, key=lambda w: (frequency.get(w, 0), w))[:3]  # the rarest first
    return [name.fill(t.replace("{kw}", kw)) for kw in keywords for t in KEYWORD_TEMPLATES for name in names[:2]]


def capitalize(text: str) -> str:
    """Upper-case the first letter only ('the Sun is' -> 'The Sun is')."""
    return text[:1].upper() + text[1:]
