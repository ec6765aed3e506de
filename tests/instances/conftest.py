from tests.postgres import postgres_cluster, postgres_url  # noqa: F401  (fixtures for this folder)
