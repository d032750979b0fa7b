//! allframe-codegen
