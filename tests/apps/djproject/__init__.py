"""A minimal Django project served by the integration tests."""
