"""`cad2program serve`: the HTTP recognition server (FastAPI + uvicorn) with dynamic batching."""
