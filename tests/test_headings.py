"""Tests for the heading mapping (src/headings.py), on the headings of the realistic fixture pages."""

import pytest

from src.headings import SYNONYMS, canonical_heading, normalise
from src.question_templates import TEMPLATES


def test_every_target_is_a_vocabulary_heading():
    assert {d: set(h) for d, h in SYNONYMS.items()} == {d: set(h) for d, h in TEMPLATES.items()}


@pytest.mark.parametrize(
    ("domain", "heading", "expected"),
    [  # headings of tests/fixtures/wikipedia/*.html
        ("astronomy", "Orbit and rotation", "Orbit"),
        ("astronomy", "Formation and migration", "Formation"),
        ("astronomy", "Atmosphere", "Composition"),
        ("astronomy", "Study and exploration", "Exploration"),
        ("astronomy", "Orbital characteristics", "Orbit"),
        ("anatomy", "Physiology", "Function"),
        ("anatomy", "Location and shape", "Location"),
        ("animals", "Distribution and habitat", "Habitat"),
        ("animals", "Behavior and ecology", "Behaviour"),
        ("animals", "Hunting and diet", "Diet"),
        ("animals", "Status and conservation", "Conservation"),
        ("animals", "Characteristics", "Description"),
        ("geography", "Flora and fauna", "Wildlife"),
        ("geography", "People", "Population"),
        ("geography", "Geography and hydrology", "Location"),
        ("chemistry", "Properties and bonding", "Properties"),
        ("chemistry", "Crystal structure", "Structure"),
        ("chemistry", "Applications", "Uses"),
        ("weather", "Prediction and safety", "Safety"),
        ("weather", "Climatology", "Occurrence"),
        ("weather", "Life cycle", "Formation"),
        ("animals", "Taxonomy", None),
        ("weather", "Orbit", None),  # another domain's word
    ],
)
def test_canonical_heading(domain, heading, expected):
    assert canonical_heading(domain, heading) == expected


def test_normalised_case_spelling_punctuation_and_compounds():
    assert normalise("Behavior & Ecology") == normalise("behaviour and ecology")
    assert canonical_heading("animals", "BEHAVIOR") == "Behaviour"
    assert canonical_heading("chemistry", "Reaction") == "Reactions"
    assert canonical_heading("geography", "Economy, transport and tourism") == "Economy"
    assert canonical_heading("astronomy", "Rings/moons") == "Physical characteristics"
    assert canonical_heading("nowhere", "Diet") is None
