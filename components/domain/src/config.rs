//! One way to read configuration (Spin variables in the components, environment variables in the
//! host): a lookup function, and errors that name the variable and say what to set it to.

/// A configuration value that is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("variable `{variable}` {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &str, problem: impl Into<String>) -> Self {
        ConfigError { variable: variable.to_string(), problem: problem.into() }
    }
}

type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Named values from wherever the caller reads them; an empty value counts as unset.
pub struct Variables<'a> {
    lookup: Lookup<'a>,
}

impl<'a> Variables<'a> {
    pub fn new(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Variables { lookup: Box::new(lookup) }
    }

    pub fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.is_empty())
    }

    /// `why` finishes "variable `x` is not set; …" with what it is for.
    pub fn required(&self, name: &str, why: &str) -> Result<String, ConfigError> {
        self.optional(name).ok_or_else(|| ConfigError::new(name, format!("is not set; {why}")))
    }

    /// A parsed value; `expected` says what would parse ("a number of seconds").
    pub fn parsed<T: std::str::FromStr>(&self, name: &str, expected: &str) -> Result<Option<T>, ConfigError> {
        self.optional(name)
            .map(|v| v.parse().map_err(|_| ConfigError::new(name, format!("is `{v}`, which is not {expected}"))))
            .transpose()
    }

    pub fn flag(&self, name: &str) -> Result<bool, ConfigError> {
        match self.optional(name).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ConfigError::new(name, format!("is `{other}`; use true or false"))),
        }
    }
}

/// The key passwords are sealed with (`seal_key`), and during a rotation the keys before it
/// (`seal_key_previous`, comma-separated), as every component that opens or seals them reads them.
pub fn sealer(vars: &Variables) -> Result<crate::Sealer, ConfigError> {
    let key = vars.required("seal_key", "set 32 random bytes, base64 (passwords are sealed with it)")?;
    let previous = vars.optional("seal_key_previous").unwrap_or_default();
    let previous: Vec<&str> = previous.split(',').map(str::trim).filter(|k| !k.is_empty()).collect();
    crate::Sealer::from_base64_key(&key).map_err(|e| ConfigError::new("seal_key", format!("is wrong: {e}")))?;
    crate::Sealer::with_previous(&key, &previous)
        .map_err(|e| ConfigError::new("seal_key_previous", format!("is wrong: {e}")))
}

/// The blob container backups go to (`backups_container`, default `backups`).
pub fn backups_container(vars: &Variables) -> String {
    vars.optional("backups_container").unwrap_or_else(|| crate::BACKUPS_CONTAINER.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables<'static> {
        Variables::new(|n| match n {
            "a" => Some("1".into()),
            "empty" => Some(String::new()),
            "bad" => Some("x".into()),
            "yes" => Some("true".into()),
            _ => None,
        })
    }

    #[test]
    fn errors_name_the_variable_and_the_fix() {
        let v = vars();
        assert_eq!(v.required("a", "x").unwrap(), "1");
        let e = v.required("empty", "the API stores everything there").unwrap_err();
        assert_eq!(e.to_string(), "variable `empty` is not set; the API stores everything there");
        assert_eq!(v.parsed::<u32>("a", "a number").unwrap(), Some(1));
        assert_eq!(
            v.parsed::<u32>("bad", "a number").unwrap_err().to_string(),
            "variable `bad` is `x`, which is not a number"
        );
        assert!(v.flag("yes").unwrap());
        assert!(!v.flag("missing").unwrap());
        assert_eq!(v.flag("bad").unwrap_err().variable, "bad");
    }
}
