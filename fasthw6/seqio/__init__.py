"""Reading and writing SEQS inputs (many symbol sequences) in bounded memory."""
from .api import (DEFAULT_CHUNK_BYTES, Chunk, SeqsError, format_sequences, iter_chunks,
                  read_sequences)

__all__ = ["DEFAULT_CHUNK_BYTES", "Chunk", "SeqsError", "format_sequences", "iter_chunks",
           "read_sequences"]
