//! An error as one line with its causes ("error connecting to server: Connection refused
//! (os error 111)"), each cause once: what logs, `/health` and metrics-free status text show.

/// `head` followed by every cause of `error` not already part of the text.
pub fn with_causes(head: String, error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = head;
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_follow_once() {
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(with_causes(error.to_string(), &error), "outer: inner");
        assert_eq!(with_causes("outer: inner".into(), &error), "outer: inner");
    }
}
