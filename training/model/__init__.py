"""Model and loss: the Qwen3 causal LM with optional LoRA (`modeling`), attention that never
crosses a packed sequence boundary (`packed_attention`), chunked cross-entropy on loss-bearing
positions only (`loss`), and local-only model folders (`dirs`)."""
