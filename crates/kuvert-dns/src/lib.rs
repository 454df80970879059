//! kuvert-dns
