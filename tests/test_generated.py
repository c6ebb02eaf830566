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


def test_every_custom_action_in_the_domain_is_served_by_the_action_server():
    import yaml
    from rasa_sdk.executor import ActionExecutor

    domain = yaml.safe_load((rasa_project.BOT / "domain.yml").read_text(encoding="utf-8"))
    executor = ActionExecutor()
    executor.register_package("bot.actions")
    custom = [a for a in domain["actions"] if not a.startswith("utter_")]
    assert sorted(set(custom) - set(executor.actions)) == []
