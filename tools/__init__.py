"""Commands that need the full install (``make install``), beside ``scripts/``, whose modules
need only what ``make synth`` installs (requirements.txt; `tests/unit/test_synth_environment.py`
imports every one of them that way): ``tools.doctor`` (mlflow for its tracking call) and
``tools.render_dashboard`` (matplotlib)."""
