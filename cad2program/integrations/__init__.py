"""Optional engines and services: ClearML tracking and serving, vLLM, Hugging Face export."""
