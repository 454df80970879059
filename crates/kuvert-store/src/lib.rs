//! kuvert-store
