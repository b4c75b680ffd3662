//! A small JSON scanner for one request object (filled in by the decoder work).
