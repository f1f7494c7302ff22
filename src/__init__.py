"""MiniLLM: a tiny decoder-only transformer trained from scratch, one DVC stage per file."""
