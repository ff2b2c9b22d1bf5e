"""The model lifecycle as an Airflow DAG per business unit (README: pipelines/README.md)."""
