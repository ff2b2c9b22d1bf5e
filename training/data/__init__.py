"""Data in: tool-calling records read from any supported format (`formats`) into one canonical
`conversation`, rendered by the Qwen3 chat template with an assistant-only loss mask (`render`),
packed without cross-contamination into shards (`packing`; by `training.prepare` from rows
spilled to disk, `spill`), and streamed back, rank-sharded and resumable, as micro-batches
(`stream`)."""
