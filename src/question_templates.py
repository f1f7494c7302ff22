"""Question phrasings for each domain's section headings (used by the generate stage).

Every article section answers one natural question ("What does the tiger eat?" for an
animal's Diet section). Several phrasings of that question share one fact, which is what
lets a small model recall the fact from a question it has not seen word for word.
To support a new heading, add its phrasings here and list it in corpus/README.md.
"""
from __future__ import annotations

LEAD = ["What is {s}?", "Tell me about {s}.", "What do you know about {s}?"]

TEMPLATES: dict[str, dict[str, list[str]]] = {
    "astronomy": {
        "Physical characteristics": ["What are the physical characteristics of {s}?", "What is {s} like physically?", "Describe the physical features of {s}."],
        "Formation": ["How did {s} form?", "What is the origin of {s}?", "Explain the formation of {s}."],
        "Composition": ["What is {s} made of?", "What is the composition of {s}?", "What material makes up {s}?"],
        "Orbit": ["What is the orbit of {s} like?", "How does {s} move through space?", "Describe the orbit of {s}."],
        "Observation": ["How can {s} be observed?", "How do astronomers observe {s}?", "What can be seen of {s} from Earth?"],
        "Exploration": ["How has {s} been explored?", "Which missions have studied {s}?", "What do we know about the exploration of {s}?"],
    },
    "anatomy": {
        "Structure": ["What is the structure of {s}?", "What are the parts of {s}?", "Describe the structure of {s}."],
        "Location": ["Where is {s} located?", "Where in the body is {s}?", "Where is {s} found in the human body?"],
        "Function": ["What does {s} do?", "What is the function of {s}?", "What is the role of {s} in the body?"],
        "Clinical significance": ["What diseases affect {s}?", "What can go wrong with {s}?", "What is the clinical significance of {s}?"],
    },
    "animals": {
        "Description": ["What does {s} look like?", "Describe the appearance of {s}.", "What are the physical features of {s}?"],
        "Habitat": ["Where does {s} live?", "What is the habitat of {s}?", "In what kind of places is {s} found?"],
        "Diet": ["What does {s} eat?", "What is the diet of {s}?", "What food does {s} eat?"],
        "Behaviour": ["How does {s} behave?", "What is the behaviour of {s} like?", "Describe the behaviour of {s}."],
        "Reproduction": ["How does {s} reproduce?", "How are the young of {s} born and raised?", "Describe the reproduction of {s}."],
        "Conservation": ["Is {s} endangered?", "What is the conservation status of {s}?", "What threats does {s} face?"],
    },
    "geography": {
        "Location": ["Where is {s}?", "Where is {s} located?", "In which part of the world is {s}?"],
        "Landscape": ["What is the landscape of {s} like?", "Describe the geography of {s}.", "What landforms are found in {s}?"],
        "Climate": ["What is the climate of {s}?", "What is the weather like in {s}?", "Describe the climate of {s}."],
        "Wildlife": ["What animals live in {s}?", "What wildlife is found in {s}?", "Describe the wildlife of {s}."],
        "Population": ["How many people live in {s}?", "What is the population of {s}?", "Who lives in {s}?"],
        "Economy": ["What is the economy of {s} like?", "What are the main industries of {s}?", "How do people in {s} make a living?"],
    },
    "chemistry": {
        "Structure": ["What is the structure of {s}?", "How is {s} built up?", "Describe the structure of {s}."],
        "Properties": ["What are the properties of {s}?", "What is {s} like?", "Describe the properties of {s}."],
        "Occurrence": ["Where is {s} found?", "Where does {s} occur in nature?", "How common is {s}?"],
        "Reactions": ["How does {s} react?", "What reactions does {s} take part in?", "Describe the chemical reactions of {s}."],
        "Uses": ["What is {s} used for?", "What are the uses of {s}?", "How do people use {s}?"],
        "History": ["What is the history of {s}?", "How was {s} discovered?", "Who first studied {s}?"],
    },
    "weather": {
        "Formation": ["How does {s} form?", "What causes {s}?", "How is {s} formed?"],
        "Characteristics": ["What are the characteristics of {s}?", "What is {s} like?", "What are the features of {s}?"],
        "Occurrence": ["Where does {s} occur?", "When and where does {s} happen?", "How common is {s}?"],
        "Effects": ["What are the effects of {s}?", "What damage can {s} cause?", "How does {s} affect people?"],
        "Safety": ["How can people stay safe during {s}?", "What safety precautions should be taken for {s}?", "How do you protect yourself from {s}?"],
    },
}


def questions_for(domain: str, heading: str, subject: str) -> list[str]:
    """The question phrasings for one section ('Lead' for the opening summary); [] if unknown.

    >>> questions_for("animals", "Diet", "the tiger")[0]
    'What does the tiger eat?'
    """
    templates = LEAD if heading == "Lead" else TEMPLATES.get(domain, {}).get(heading, [])
    return [capitalize(t.format(s=subject)) for t in templates]


def capitalize(text: str) -> str:
    """Upper-case the first letter only ('the Sun is' -> 'The Sun is')."""
    return text[:1].upper() + text[1:]
