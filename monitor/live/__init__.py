"""Live monitoring: the batch core fed as audio arrives."""
