"""The domain's data: its tables (models), created and migrated by whoever runs the domain (the gateway)."""
