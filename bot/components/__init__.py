"""Custom Rasa components, loaded by module path from bot/ (Rasa puts its working directory on sys.path)."""
