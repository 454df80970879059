//! kuvert-testkit
