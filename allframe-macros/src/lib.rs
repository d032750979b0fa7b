//! allframe-macros
