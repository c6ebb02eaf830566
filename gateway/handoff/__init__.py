"""A person when the bot is not enough: handoff tickets (store), what the citizen meets (responders),
how a person's words reach the citizen (delivery) and the agents' inbox (api, schemas)."""
