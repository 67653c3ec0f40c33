"""Runs on disk: the run folder (the one owner of its layout), trials, sweeps and the executors
that run them (local, batched, a process pool, Ray)."""
