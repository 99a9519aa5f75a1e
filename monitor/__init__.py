"""Local real-time compliance monitor for Mandarin service calls."""
import os

# Whisper's input features are a matrix product in numpy, and numpy's BLAS (OpenBLAS) splits its
# sums over as many threads as the machine has cores unless told (Ray's workers get one): on some
# CPUs the last digits of a feature then change with the thread count, and now and then a word
# (AVX-512: between 1 and 2 threads every line of dev-000 had other scores and 6 of 16 other
# words). One BLAS thread everywhere, so that score, replay, live and Ray on any machine hear the
# same words; the decodes that run side by side (AsrOptions.streams) use the cores. OpenBLAS reads
# this once, when numpy loads: a program that imports numpy before monitor keeps its own setting.
os.environ["OPENBLAS_NUM_THREADS"] = "1"

__version__ = "0.1.0"
