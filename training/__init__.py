"""Training code for FS-Diff (Accelerate script and paired dataset); the library never imports it."""
