"""Map the headings real articles use onto each domain's small heading vocabulary.

generate asks a section's questions by its heading ("What does the tiger eat?" for an
animal's Diet), but Wikipedia says "Hunting and diet", "Distribution and habitat" or
"Orbit and rotation". SYNONYMS lists, per domain and vocabulary heading, the other words
articles use for it; canonical_heading() finds the vocabulary heading for any heading:

    >>> canonical_heading("animals", "Distribution and habitat")
    'Habitat'
    >>> canonical_heading("astronomy", "orbit & rotation")
    'Orbit'

Headings are compared normalised (case, punctuation, US/UK spelling, plurals), and a
compound heading ("X and Y", "X, Y and Z") that does not match whole tries each part in
order. To teach it a new heading, add the words to the list of the heading it means.
"""

from __future__ import annotations

import re

SYNONYMS: dict[str, dict[str, list[str]]] = {
    "astronomy": {
        "Physical characteristics": [
            "characteristics",
            "physical properties",
            "properties",
            "description",
            "size",
            "mass",
            "size and mass",
            "structure",
            "internal structure",
            "interior",
            "surface",
            "surface features",
            "magnetosphere",
            "magnetic field",
            "rings",
            "ring system",
            "appearance",
            "morphology",
            "geology",
        ],
        "Formation": [
            "origin",
            "origins",
            "evolution",
            "formation and evolution",
            "life cycle",
            "birth",
            "history",
            "migration",
            "stellar evolution",
        ],
        "Composition": ["chemical composition", "atmosphere", "interior composition", "constituents"],
        "Orbit": [
            "orbital characteristics",
            "orbital elements",
            "rotation",
            "motion",
            "orbit and rotation",
            "orbital motion",
            "trajectory",
            "location",
            "position",
        ],
        "Observation": [
            "observational history",
            "visibility",
            "viewing",
            "discovery",
            "discovery and naming",
            "naming",
            "observation history",
            "detection",
        ],
        "Exploration": [
            "research",
            "space exploration",
            "missions",
            "spacecraft",
            "robotic exploration",
            "future missions",
            "research and exploration",
        ],
    },
    "anatomy": {
        "Structure": [
            "anatomy",
            "parts",
            "gross anatomy",
            "microanatomy",
            "histology",
            "layers",
            "blood supply",
            "nerve supply",
            "development",
            "variation",
            "composition",
        ],
        "Location": ["position", "relations", "surface anatomy", "placement"],
        "Function": ["physiology", "role", "roles", "purpose", "mechanism", "action", "actions"],
        "Clinical significance": [
            "clinical relevance",
            "disease",
            "diseases",
            "disorders",
            "pathology",
            "medical conditions",
            "injury",
            "injuries",
            "treatment",
            "diagnosis",
            "health",
        ],
    },
    "animals": {
        "Description": [
            "characteristics",
            "physical characteristics",
            "physical description",
            "appearance",
            "anatomy",
            "anatomy and morphology",
            "morphology",
            "size",
            "colouration",
            "colouration and pattern",
            "fur",
            "plumage",
        ],
        "Habitat": [
            "distribution",
            "range",
            "geographic range",
            "habitat and distribution",
            "ecology",
            "distribution and habitat",
        ],
        "Diet": [
            "feeding",
            "food",
            "hunting",
            "prey",
            "foraging",
            "hunting and diet",
            "feeding ecology",
            "diet and feeding",
            "predation",
        ],
        "Behaviour": [
            "behaviour and ecology",
            "social behaviour",
            "social structure",
            "communication",
            "activity",
            "intelligence",
            "social life",
            "territorial behaviour",
        ],
        "Reproduction": [
            "breeding",
            "life cycle",
            "reproduction and life cycle",
            "mating",
            "nesting",
            "life history",
            "lifespan",
            "development",
            "growth",
        ],
        "Conservation": [
            "threats",
            "status",
            "conservation status",
            "population",
            "protection",
            "relationship with humans",
            "interaction with humans",
            "human impact",
        ],
    },
    "geography": {
        "Location": ["geography", "position", "borders", "extent", "course", "setting"],
        "Landscape": [
            "topography",
            "terrain",
            "geology",
            "physical geography",
            "relief",
            "landforms",
            "hydrology",
            "rivers",
            "mountains",
            "features",
            "physical features",
        ],
        "Climate": ["weather", "climate and weather"],
        "Wildlife": [
            "flora and fauna",
            "fauna",
            "flora",
            "ecology",
            "biodiversity",
            "animals",
            "plants",
            "vegetation",
            "environment",
            "natural history",
        ],
        "Population": [
            "demographics",
            "demography",
            "people",
            "inhabitants",
            "culture",
            "society",
            "settlement",
            "settlements",
            "languages",
            "religion",
        ],
        "Economy": [
            "industry",
            "industries",
            "trade",
            "agriculture",
            "tourism",
            "resources",
            "natural resources",
            "transport",
            "infrastructure",
            "economy and infrastructure",
        ],
    },
    "chemistry": {
        "Structure": [
            "molecular structure",
            "chemical structure",
            "bonding",
            "crystal structure",
            "molecular geometry",
            "electron configuration",
            "isotopes",
            "atomic structure",
        ],
        "Properties": [
            "physical properties",
            "chemical properties",
            "characteristics",
            "properties and bonding",
            "physical and chemical properties",
        ],
        "Occurrence": [
            "natural occurrence",
            "occurrence in nature",
            "abundance",
            "sources",
            "natural sources",
            "production",
            "extraction",
            "preparation",
            "synthesis",
            "manufacture",
            "biological role",
            "in the environment",
            "atmospheric methane",
        ],
        "Reactions": ["chemical reactions", "reactivity", "chemistry", "combustion", "compounds"],
        "Uses": ["applications", "use", "usage", "industrial uses", "commercial uses", "fuel", "applications and uses"],
        "History": ["discovery", "etymology", "naming", "history and etymology", "discovery and naming"],
    },
    "weather": {
        "Formation": [
            "causes",
            "cause",
            "development",
            "mechanism",
            "physics",
            "origin",
            "genesis",
            "formation and development",
            "life cycle",
            "meteorology",
        ],
        "Characteristics": [
            "description",
            "structure",
            "properties",
            "types",
            "classification",
            "features",
            "appearance",
            "intensity",
            "measurement",
        ],
        "Occurrence": [
            "distribution",
            "climatology",
            "frequency",
            "seasons",
            "locations",
            "geography",
            "notable events",
            "records",
        ],
        "Effects": [
            "impact",
            "impacts",
            "damage",
            "consequences",
            "effects on humans",
            "hazards",
            "economic impact",
            "health effects",
        ],
        "Safety": [
            "preparedness",
            "protection",
            "precautions",
            "warnings",
            "forecasting",
            "prediction",
            "mitigation",
            "safety and preparedness",
        ],
    },
}

# The spellings articles differ in; both sides of a comparison use the British one.
SPELLING = {
    "behavior": "behaviour",
    "color": "colour",
    "coloration": "colouration",
    "center": "centre",
    "fiber": "fibre",
    "sulfur": "sulphur",
    "aluminum": "aluminium",
    "defense": "defence",
}
PART_SEPARATORS = re.compile(r",| and | & |/|;")


def normalise(heading: str) -> str:
    """A heading's comparison key: lower case, letters only, British spelling, singular.

    >>> normalise("Behavior & Ecology")
    'behaviour and ecology'
    >>> normalise("Properties")
    'property'
    """
    words = re.sub(r"[^a-z]+", " ", heading.lower().replace("&", " and ")).split()
    return " ".join(_singular(SPELLING.get(word, word)) for word in words)


def _singular(word: str) -> str:
    """A crude singular, only ever used as a key: 'properties' -> 'property', 'uses' -> 'use'."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def _lookup_table(domain: str) -> dict[str, str]:
    """normalised heading or synonym -> vocabulary heading, for one domain."""
    table = {}
    for heading, synonyms in SYNONYMS[domain].items():
        for name in [heading, *synonyms]:
            table.setdefault(normalise(name), heading)  # the first list that names a word wins
    return table


LOOKUP = {domain: _lookup_table(domain) for domain in SYNONYMS}


def canonical_heading(domain: str, heading: str) -> str | None:
    """The vocabulary heading a section heading means in this domain, or None if none fits."""
    table = LOOKUP.get(domain, {})
    for candidate in [heading, *PART_SEPARATORS.split(f" {heading} ")]:
        match = table.get(normalise(candidate))
        if match:
            return match
    return None
