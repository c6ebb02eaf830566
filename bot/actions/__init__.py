"""Custom actions for the Rasa server, run by rasa-sdk's action server in the main environment.

They are thin: every service's behaviour lives in intents/ (catalogue + handlers); the classes
here are generated per service and slot from the catalogue."""
