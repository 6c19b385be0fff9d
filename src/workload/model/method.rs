//! A request's method and the set of answer codes that count as success:
//! small value types the reader fills and the compiler and exports read.

use std::fmt;

/// The methods a request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    pub const ALL: [Method; 7] =
        [Method::Get, Method::Head, Method::Post, Method::Put, Method::Patch, Method::Delete, Method::Options];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }

    /// Case-insensitive: `get` is `GET`.
    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer codes that count as success: a set over 100…599.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusSet([u64; 10]);

impl StatusSet {
    pub const EMPTY: StatusSet = StatusSet([0; 10]);

    /// Any 2xx: the default.
    pub fn success() -> StatusSet {
        let mut set = StatusSet::EMPTY;
        set.insert_class(2);
        set
    }

    pub fn insert(&mut self, code: u16) {
        if code < 640 {
            self.0[usize::from(code / 64)] |= 1 << (code % 64);
        }
    }

    pub fn insert_class(&mut self, class: u16) {
        for code in class * 100..class * 100 + 100 {
            self.insert(code);
        }
    }

    pub fn contains(&self, code: u16) -> bool {
        code < 640 && self.0[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }
}

/// `2xx`, or `200, 201, 404`, classes written as such.
impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { ", " };
            first = false;
            f.write_str(s)
        };
        for class in 1..=5u16 {
            if (class * 100..class * 100 + 100).all(|c| self.contains(c)) {
                sep(f)?;
                write!(f, "{class}xx")?;
            } else {
                for code in (class * 100..class * 100 + 100).filter(|c| self.contains(*c)) {
                    sep(f)?;
                    write!(f, "{code}")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusSet({self})")
    }
}
