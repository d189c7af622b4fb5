//! Program images (placeholder, filled in below).
