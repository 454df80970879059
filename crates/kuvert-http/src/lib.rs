//! kuvert-http
