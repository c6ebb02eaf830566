"""The Rasa project is generated from the catalogue and the city data: stale files fail CI."""

from intents import rasa_project
from intents.services import load_catalogue


def test_generated_rasa_files_are_up_to_date():
    stale = [
        str(path.relative_to(rasa_project.REPO))
        for path, text in rasa_project.outputs().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert stale == [], "run `python -m intents.rasa_project` and commit the result"


def test_every_entity_annotation_falls_on_jieba_token_boundaries():
    catalogue = load_catalogue()
    userdict = rasa_project.outputs(catalogue)[rasa_project.USERDICT]
    assert rasa_project.misaligned(catalogue, userdict) == []
