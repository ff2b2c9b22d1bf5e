"""The training loop's state and surroundings: atomic, resumable checkpoints (`checkpoint`),
process groups and FSDP2/DDP wrapping (`distributed`), MLflow tracking on rank 0 (`tracking`),
and returning freed CPU heap between step phases (`host_memory`). The loop itself is
`training.train`."""
