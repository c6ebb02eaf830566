"""The bottom layer: small helpers every other package (channels, intents, bot, gateway) may import.
It imports none of them."""
