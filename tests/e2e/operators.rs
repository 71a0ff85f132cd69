//! What the binary offers operators beside the work itself: shell completions and a man
//! page generated from the CLI, and logs as JSON lines.

use super::support::{Env, START_DEADLINE, Server};

#[test]
fn completions_and_the_man_page_are_generated_from_the_cli() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = env.ok(&["completions", shell]);
        for word in ["freshet", "serve", "data-dir", "log-format"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let man = env.ok(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH freshet"),
        "{man}"
    );
    for word in ["serve", "FRESHET_DATA_DIR", "log\\-format"] {
        assert!(man.contains(word), "the man page lacks {word}:\n{man}");
    }
    let unknown = env.run(&["completions", "tcsh"]);
    assert_eq!(unknown.code, Some(2), "{}", unknown.stderr);
}

#[test]
fn logs_are_json_lines_on_request_and_never_coloured_off_a_terminal() {
    let env = Env::new();
    let args = ["serve", "--listen", "127.0.0.1:0", "--log", "info"];
    let mut json = Server::start_command(
        &env,
        &[&args[..], &["--log-format", "json"]].concat(),
        START_DEADLINE,
    );
    json.terminate();
    let text = json.log_text();
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let stopped = events
        .iter()
        .find(|e| {
            e["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("stopped accepting requests"))
        })
        .unwrap_or_else(|| panic!("no JSON shutdown line in:\n{text}"));
    assert_eq!(stopped["level"], "INFO", "{stopped}");
    assert!(stopped["timestamp"].is_string(), "{stopped}");

    let mut plain = Server::start_command(&env, &args, START_DEADLINE);
    plain.terminate();
    let text = plain.log_text();
    assert!(text.contains("stopped accepting requests"), "{text}");
    assert!(!text.contains('\u{1b}'), "colours off a terminal:\n{text}");
}
