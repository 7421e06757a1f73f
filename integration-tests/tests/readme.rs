//! The README shows the template service's files as they are, so what it shows is what CI
//! builds and tests (`.ci/run` runs the template's tests as its own project).

use herald_integration_tests::workspace;

/// Every ```rust block of the README whose first line is `// <path>`: (path, the rest).
fn shown_files(readme: &str) -> Vec<(String, String)> {
    let mut shown = Vec::new();
    let mut rest = readme;
    while let Some(start) = rest.find("```rust\n") {
        let body = &rest[start + "```rust\n".len()..];
        let Some(end) = body.find("\n```") else {
            panic!("README: a ```rust block is not closed");
        };
        let block = &body[..end];
        if let Some((first, code)) = block.split_once('\n') {
            if let Some(path) = first.strip_prefix("// ").filter(|p| p.contains('/')) {
                shown.push((path.trim().to_owned(), code.to_owned()));
            }
        }
        rest = &body[end + "\n```".len()..];
    }
    shown
}

#[test]
fn the_readme_shows_the_template_services_files_as_they_are() {
    let root = workspace();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let shown = shown_files(&readme);
    let paths: Vec<&str> = shown.iter().map(|(path, _)| path.as_str()).collect();
    for wanted in [
        "templates/service/src/loyalty.rs",
        "templates/service/tests/loyalty.rs",
        "templates/service/src/main.rs",
    ] {
        assert!(
            paths.contains(&wanted),
            "README shows no ```rust block starting `// {wanted}`; it shows {paths:?}"
        );
    }
    for (path, code) in &shown {
        let file = std::fs::read_to_string(root.join(path))
            .unwrap_or_else(|error| panic!("README shows {path}, which cannot be read: {error}"));
        assert_eq!(
            code.trim_end(),
            file.trim_end(),
            "README's block for {path} differs from the file: copy the file into the README"
        );
    }
}
