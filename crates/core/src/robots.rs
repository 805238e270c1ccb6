//! `robots.txt` (RFC 9309): parsing and matching, no I/O.
//!
//! A file is a list of groups, each one or more `user-agent` lines followed
//! by `allow` / `disallow` rules. A crawler obeys the groups naming its
//! product token (case-insensitively), merged; failing that, the `*`
//! groups; failing that, nothing. Among the rules of the chosen groups the
//! longest pattern matching the path (its query included) decides; an
//! `allow` wins a tie; a path no rule matches is allowed, and so is
//! `/robots.txt` itself. In a pattern `*` matches any run of characters and
//! a final `$` anchors it at the end of the path.

/// Whether a run obeys `robots.txt` (`--robots`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RobotsMode {
    /// Never fetch `robots.txt`; every job is fetched (as wget and curl do
    /// for explicit lists of URLs).
    #[default]
    Ignore,
    /// Fetch each host's `robots.txt` once per run and fail the jobs it
    /// disallows, without retry.
    Respect,
}

/// The product token oncefetch matches `user-agent` lines against.
pub const PRODUCT_TOKEN: &str = "oncefetch";

/// How much of a `robots.txt` is read and parsed (RFC 9309 §2.5 asks for
/// at least 500 KiB).
pub const MAX_ROBOTS_BYTES: usize = 500 * 1024;

/// One `allow` or `disallow` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `allow` (true) or `disallow`.
    pub allow: bool,
    /// The path pattern, as written.
    pub pattern: String,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = if self.allow { "Allow" } else { "Disallow" };
        write!(f, "{key}: {}", self.pattern)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Group {
    /// The `user-agent` values, lower-cased.
    agents: Vec<String>,
    rules: Vec<Rule>,
}

/// A parsed `robots.txt`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Robots {
    groups: Vec<Group>,
}

/// What a `robots.txt` says of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The path may be fetched.
    Allowed,
    /// The path may not be fetched.
    Disallowed {
        /// The deciding rule.
        rule: Rule,
        /// The `user-agent` of the group that holds it: the product token or `*`.
        agent: String,
    },
}

impl Robots {
    /// A file with no rules: everything allowed (a missing `robots.txt`).
    pub fn allow_all() -> Self {
        Self::default()
    }

    /// Parses `text`; lines that are not `key: value` with a known key are
    /// ignored, as are rules before the first `user-agent`.
    pub fn parse(text: &str) -> Self {
        let mut groups: Vec<Group> = Vec::new();
        // Whether the last group still takes `user-agent` lines (no rule yet).
        let mut open = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "user-agent" => {
                    if !open {
                        groups.push(Group::default());
                        open = true;
                    }
                    if let Some(group) = groups.last_mut() {
                        group.agents.push(value.to_ascii_lowercase());
                    }
                }
                key @ ("allow" | "disallow") => {
                    open = false;
                    let Some(group) = groups.last_mut() else {
                        continue;
                    };
                    // An empty `disallow` (or `allow`) is no rule at all.
                    if !value.is_empty() {
                        group.rules.push(Rule {
                            allow: key == "allow",
                            pattern: value.to_owned(),
                        });
                    }
                }
                _ => {}
            }
        }
        Self { groups }
    }

    /// What the file says of `path` (path and query of a URL, from `/`)
    /// for the crawler whose product token is `token`.
    pub fn check(&self, token: &str, path: &str) -> Verdict {
        if path == "/robots.txt" {
            return Verdict::Allowed;
        }
        let token = token.to_ascii_lowercase();
        let names = |agent: &str| agent_token(agent) == token;
        let (agent, rules) = match self.rules_of(names) {
            Some(rules) => (token.clone(), rules),
            None => match self.rules_of(|agent| agent == "*") {
                Some(rules) => ("*".to_owned(), rules),
                None => return Verdict::Allowed,
            },
        };
        let mut best: Option<&Rule> = None;
        for rule in rules.into_iter().filter(|rule| matches(&rule.pattern, path)) {
            let better = match best {
                None => true,
                Some(b) => {
                    rule.pattern.len() > b.pattern.len() || (rule.pattern.len() == b.pattern.len() && rule.allow)
                }
            };
            if better {
                best = Some(rule);
            }
        }
        match best {
            Some(rule) if !rule.allow => Verdict::Disallowed {
                rule: rule.clone(),
                agent,
            },
            _ => Verdict::Allowed,
        }
    }

    /// The rules of every group with an agent `names` accepts, merged;
    /// `None` when no group has one.
    fn rules_of(&self, names: impl Fn(&str) -> bool) -> Option<Vec<&Rule>> {
        let mut found = false;
        let mut rules = Vec::new();
        for group in self.groups.iter().filter(|g| g.agents.iter().any(|a| names(a))) {
            found = true;
            rules.extend(group.rules.iter());
        }
        found.then_some(rules)
    }
}

/// The product token of a `user-agent` value: its leading letters, `_` and
/// `-` (so `oncefetch/1.0` names `oncefetch`).
fn agent_token(agent: &str) -> &str {
    let end = agent
        .find(|c: char| !(c.is_ascii_alphabetic() || c == '_' || c == '-'))
        .unwrap_or(agent.len());
    &agent[..end]
}

/// Whether `pattern` (with `*` and a final `$`) matches `path` from its start.
fn matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = path.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: a prefix, or the whole path when anchored.
        return !anchored || rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    if anchored {
        rest.ends_with(last)
    } else {
        rest.contains(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disallowed(robots: &Robots, path: &str) -> bool {
        matches!(robots.check(PRODUCT_TOKEN, path), Verdict::Disallowed { .. })
    }

    #[test]
    fn rfc_9309_section_5_1_groups() {
        // RFC 9309 §5.1, with oncefetch as "ExampleBot".
        let robots = Robots::parse(
            "User-Agent: *\nDisallow: *.gif$\nDisallow: /example/\nAllow: /publications/\n\n\
             User-Agent: foobot\nDisallow:/\nAllow:/example/page.html\nAllow:/example/allowed.gif\n\n\
             User-Agent: barbot\nUser-Agent: oncefetch\nDisallow: /example/page.html\nDisallow: /example/disallowed.gif\n\n\
             User-Agent: bazbot\nDisallow: /example/page.html\n",
        );
        assert!(disallowed(&robots, "/example/page.html"));
        assert!(disallowed(&robots, "/example/disallowed.gif"));
        assert!(!disallowed(&robots, "/example/allowed.gif"));
        assert!(
            !disallowed(&robots, "/publications/x.gif"),
            "the star group does not apply"
        );
        let other = robots.check("quxbot", "/example/x");
        assert_eq!(
            other,
            Verdict::Disallowed {
                rule: Rule {
                    allow: false,
                    pattern: "/example/".to_owned()
                },
                agent: "*".to_owned()
            }
        );
        assert!(matches!(robots.check("quxbot", "/a/b.gif"), Verdict::Disallowed { .. }));
        assert_eq!(robots.check("quxbot", "/publications/"), Verdict::Allowed);
        assert_eq!(robots.check("foobot", "/example/page.html"), Verdict::Allowed);
        assert!(matches!(robots.check("foobot", "/x"), Verdict::Disallowed { .. }));
    }

    #[test]
    fn rfc_9309_section_5_2_longest_match() {
        let robots =
            Robots::parse("User-Agent: foobot\nAllow: /example/page/\nDisallow: /example/page/disallowed.gif\n");
        assert_eq!(robots.check("foobot", "/example/page/"), Verdict::Allowed);
        assert_eq!(robots.check("foobot", "/example/page/x.html"), Verdict::Allowed);
        assert!(matches!(
            robots.check("foobot", "/example/page/disallowed.gif"),
            Verdict::Disallowed { .. }
        ));
    }

    #[test]
    fn allow_wins_a_tie_and_empty_disallow_is_no_rule() {
        let robots = Robots::parse("user-agent: *\ndisallow: /page\nallow: /page\n");
        assert!(!disallowed(&robots, "/page"));
        let robots = Robots::parse("user-agent: *\ndisallow:\n");
        assert!(!disallowed(&robots, "/anything"));
    }

    #[test]
    fn rfc_9309_section_2_2_3_wildcards() {
        let robots = Robots::parse("User-agent: *\nDisallow: /*.php$\nDisallow: /fish*.x\nDisallow: /end$\n");
        assert!(disallowed(&robots, "/index.php"));
        assert!(disallowed(&robots, "/a/b/c.php"));
        assert!(!disallowed(&robots, "/index.php?x=1"));
        assert!(!disallowed(&robots, "/index.php5"));
        assert!(disallowed(&robots, "/fish/salmon.x"));
        assert!(disallowed(&robots, "/fishy.xml"));
        assert!(!disallowed(&robots, "/fish"));
        assert!(disallowed(&robots, "/end"));
        assert!(!disallowed(&robots, "/endless"));
    }

    #[test]
    fn product_token_wins_over_star_and_groups_merge() {
        let robots = Robots::parse(
            "User-agent: *\nDisallow: /\n\nUser-agent: OnceFetch/1.0\nDisallow: /a/\n\nuser-agent: oncefetch\ndisallow: /b/ # comment\n",
        );
        assert!(disallowed(&robots, "/a/1"));
        assert!(disallowed(&robots, "/b/1"));
        assert!(!disallowed(&robots, "/c"));
        match robots.check(PRODUCT_TOKEN, "/b/2") {
            Verdict::Disallowed { rule, agent } => {
                assert_eq!(rule.to_string(), "Disallow: /b/");
                assert_eq!(agent, "oncefetch");
            }
            Verdict::Allowed => panic!("allowed"),
        }
    }

    #[test]
    fn no_matching_group_and_robots_txt_itself_are_allowed() {
        let robots = Robots::parse("User-agent: foobot\nDisallow: /\n");
        assert!(!disallowed(&robots, "/x"));
        let robots = Robots::parse("User-agent: *\nDisallow: /\n");
        assert!(!disallowed(&robots, "/robots.txt"));
        assert!(disallowed(&robots, "/"));
        assert!(!disallowed(&Robots::allow_all(), "/x"));
        assert!(
            !disallowed(&Robots::parse("Disallow: /\n"), "/x"),
            "a rule outside any group"
        );
    }
}
