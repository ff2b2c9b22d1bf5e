"""The Airflow DAG file MWAA parses (Airflow's safe-mode discovery reads only files whose text
says "airflow" and "dag"): `make mwaa-bundle` puts it at the top of the DAG folder, beside
`pipelines/`, the code the tasks import, and `config/` holding only the BU's own YAML."""

from pathlib import Path

from pipelines.dag import dags_from

globals().update(dags_from(Path(__file__).resolve().parent / "config"))
