//! kuvert-submit
