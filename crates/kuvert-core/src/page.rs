//! Pages of a list: how many items one request gets, by default and at most, so that no
//! request can make a list answer grow without bound.

/// The page sizes of one kind of list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSize {
    pub default: u32,
    pub max: u32,
}

/// Events, suppressions, captured messages: at most 300 a page, as Mailgun's events API.
pub const LISTS: PageSize = PageSize {
    default: 100,
    max: 300,
};

/// The audit log, whose entries are small.
pub const AUDIT: PageSize = PageSize {
    default: 100,
    max: 1000,
};

/// A page size asked for outside the bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("limit is {asked}; it must be between 1 and {max}")]
pub struct OutOfBounds {
    pub asked: u32,
    pub max: u32,
}

impl PageSize {
    /// The page size for what a request asked: the default when it asked nothing, else what
    /// it asked if that is 1 to `max`.
    pub fn of(self, asked: Option<u32>) -> Result<u32, OutOfBounds> {
        match asked {
            None => Ok(self.default),
            Some(n) if (1..=self.max).contains(&n) => Ok(n),
            Some(asked) => Err(OutOfBounds {
                asked,
                max: self.max,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_the_default_or_what_was_asked_within_bounds() {
        assert_eq!(LISTS.of(None), Ok(100));
        assert_eq!(LISTS.of(Some(1)), Ok(1));
        assert_eq!(LISTS.of(Some(300)), Ok(300));
        let refused = LISTS.of(Some(301)).expect_err("past the bound");
        assert_eq!(
            refused.to_string(),
            "limit is 301; it must be between 1 and 300"
        );
        assert!(LISTS.of(Some(0)).is_err());
        assert_eq!(AUDIT.of(Some(1000)), Ok(1000));
        assert!(AUDIT.of(Some(1001)).is_err());
    }
}
