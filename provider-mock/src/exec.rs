//! The mock's built-in command set for exec: a tiny shell over the pod's delivered data.
//!
//! Commands: `sh -c SCRIPT` (statements joined by `;`, `&&`, `||`, newlines; `$VAR`, `${VAR}`
//! and `$?` expansion; single and double quotes), `sh` alone (an interactive shell reading
//! stdin), `echo [-n]`, `cat [FILE…]` (no file: copy stdin), `ls [PATH…]`, `env`,
//! `printenv [NAME]`, `sleep SECONDS`, `exit [N]`, `true`, `false`, `hostname`, `pwd`,
//! `load MILLICORES` (change the container's reported CPU usage), `tty-size [--watch]` (print the
//! terminal size, and with `--watch` every resize until stdin closes). Unknown commands exit 127.

use std::sync::Arc;

use vk_provider_kit::{pod::Mount, session::Io};
use vk_provider_sdk::pb;

use crate::{
    files::{self, Entry},
    store::Store,
};

/// What a command can see of its container.
#[derive(Clone)]
pub struct Context {
    /// The store, for `load`.
    pub store: Arc<Store>,
    /// Pod UID.
    pub uid: String,
    /// Pod name (the hostname).
    pub pod_name: String,
    /// Container name.
    pub container: String,
    /// Resolved environment.
    pub env: Vec<(String, String)>,
    /// The pod's volume files.
    pub volumes: Vec<pb::Volume>,
    /// The container's mounts.
    pub mounts: Vec<Mount>,
}

impl Context {
    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Outcome of one command.
enum Flow {
    /// Continue with this exit code.
    Code(i32),
    /// `exit`: stop the shell with this code.
    Exit(i32),
}

/// Runs `argv` and returns its exit code.
pub async fn run(argv: &[String], ctx: &Context, io: &mut Io) -> i32 {
    match command(argv, ctx, io, 0).await {
        Flow::Code(c) | Flow::Exit(c) => c,
    }
}

async fn command(argv: &[String], ctx: &Context, io: &mut Io, last: i32) -> Flow {
    let Some(name) = argv.first() else {
        return Flow::Code(0);
    };
    let args = &argv[1..];
    let base = name.rsplit('/').next().unwrap_or(name);
    let code = match base {
        "sh" | "bash" | "ash" => {
            return match args.first().map(String::as_str) {
                Some("-c") => match args.get(1) {
                    Some(script) => Flow::Code(Box::pin(script_run(script, ctx, io)).await),
                    None => {
                        io.stderr("sh: -c requires an argument\n").await;
                        Flow::Code(2)
                    }
                },
                _ => Flow::Code(Box::pin(interactive(ctx, io)).await),
            };
        }
        "exit" => {
            return match args.first() {
                None => Flow::Exit(last),
                Some(a) => match a.parse::<i32>() {
                    Ok(n) => Flow::Exit(n & 0xff),
                    Err(_) => {
                        io.stderr(format!("sh: exit: {a}: numeric argument required\n"))
                            .await;
                        Flow::Exit(2)
                    }
                },
            };
        }
        "true" | ":" => 0,
        "false" => 1,
        "echo" => {
            let (newline, words) = match args.first().map(String::as_str) {
                Some("-n") => (false, &args[1..]),
                _ => (true, args),
            };
            let mut s = words.join(" ");
            if newline {
                s.push('\n');
            }
            io.stdout(s).await;
            0
        }
        "hostname" => {
            io.stdout(format!("{}\n", ctx.pod_name)).await;
            0
        }
        "pwd" => {
            io.stdout("/\n").await;
            0
        }
        "printenv" if !args.is_empty() => match ctx.var(&args[0]) {
            Some(v) => {
                io.stdout(format!("{v}\n")).await;
                0
            }
            None => 1,
        },
        "env" | "printenv" => {
            let mut s = String::new();
            for (k, v) in &ctx.env {
                s.push_str(&format!("{k}={v}\n"));
            }
            io.stdout(s).await;
            0
        }
        "sleep" => match args
            .first()
            .and_then(|a| a.trim_end_matches('s').parse::<f64>().ok())
        {
            Some(secs) if secs.is_finite() && secs >= 0.0 => {
                tokio::time::sleep(std::time::Duration::from_secs_f64(secs.min(86_400.0))).await;
                0
            }
            _ => {
                io.stderr("sleep: invalid time interval\n").await;
                1
            }
        },
        "cat" => cat(args, ctx, io).await,
        "ls" => ls(args, ctx, io).await,
        "load" => match args.first().and_then(|a| kube_values::millicores(a).ok()) {
            Some(m) => {
                if ctx.store.set_cpu(&ctx.uid, &ctx.container, m) {
                    io.stdout(format!("cpu usage set to {m}m\n")).await;
                    0
                } else {
                    io.stderr("load: container is gone\n").await;
                    1
                }
            }
            None => {
                io.stderr("load: usage: load MILLICORES (e.g. 500m or 0.5)\n")
                    .await;
                2
            }
        },
        "tty-size" => tty_size(args, io).await,
        other => {
            io.stderr(format!("sh: {other}: not found\n")).await;
            127
        }
    };
    Flow::Code(code)
}

async fn cat(args: &[String], ctx: &Context, io: &mut Io) -> i32 {
    if args.is_empty() || args.iter().all(|a| a == "-") {
        while let Some(chunk) = io.read_chunk().await {
            if !io.stdout(chunk).await {
                break;
            }
        }
        return 0;
    }
    let mut code = 0;
    for path in args {
        match files::lookup(&ctx.volumes, &ctx.mounts, path) {
            Entry::File(content) => {
                io.stdout(content).await;
            }
            Entry::Dir(_) => {
                io.stderr(format!("cat: {path}: Is a directory\n")).await;
                code = 1;
            }
            Entry::Missing => {
                io.stderr(format!("cat: {path}: No such file or directory\n"))
                    .await;
                code = 1;
            }
        }
    }
    code
}

async fn ls(args: &[String], ctx: &Context, io: &mut Io) -> i32 {
    let paths: Vec<String> = if args.is_empty() {
        vec!["/".into()]
    } else {
        args.to_vec()
    };
    let mut code = 0;
    for path in &paths {
        match files::lookup(&ctx.volumes, &ctx.mounts, path) {
            Entry::File(_) => {
                io.stdout(format!("{path}\n")).await;
            }
            Entry::Dir(names) => {
                let mut s = names.join("\n");
                s.push('\n');
                io.stdout(s).await;
            }
            Entry::Missing => {
                io.stderr(format!(
                    "ls: cannot access '{path}': No such file or directory\n"
                ))
                .await;
                code = 2;
            }
        }
    }
    code
}

async fn tty_size(args: &[String], io: &mut Io) -> i32 {
    let print = |s: Option<pb::TerminalSize>| match s {
        Some(s) => format!("{} {}\n", s.height, s.width),
        None => "unknown\n".to_string(),
    };
    let current = *io.resize.borrow_and_update();
    io.stdout(print(current)).await;
    if args.first().map(String::as_str) != Some("--watch") {
        return 0;
    }
    loop {
        tokio::select! {
            changed = io.resize.changed() => {
                if changed.is_err() { return 0; }
                let size = *io.resize.borrow_and_update();
                if !io.stdout(print(size)).await { return 0; }
            }
            chunk = io.stdin.recv() => if chunk.is_none() { return 0; },
        }
    }
}

async fn interactive(ctx: &Context, io: &mut Io) -> i32 {
    let mut last = 0;
    loop {
        if io.tty {
            io.stdout("# ").await;
        }
        let Some(line) = io.read_line().await else {
            return last;
        };
        match Box::pin(script_flow(&line, ctx, io, last)).await {
            Flow::Code(c) => last = c,
            Flow::Exit(c) => return c,
        }
    }
}

async fn script_run(script: &str, ctx: &Context, io: &mut Io) -> i32 {
    match script_flow(script, ctx, io, 0).await {
        Flow::Code(c) | Flow::Exit(c) => c,
    }
}

async fn script_flow(script: &str, ctx: &Context, io: &mut Io, mut last: i32) -> Flow {
    let statements = match parse(script, &|n| ctx.var(n).map(str::to_string), last) {
        Ok(s) => s,
        Err(e) => {
            io.stderr(format!("sh: syntax error: {e}\n")).await;
            return Flow::Code(2);
        }
    };
    let mut run_next = true;
    for (argv, connector) in statements {
        if run_next {
            // Variables are expanded when the script is parsed, so `$?` is the code from
            // before the script started.
            match Box::pin(command(&argv, ctx, io, last)).await {
                Flow::Code(c) => last = c,
                Flow::Exit(c) => return Flow::Exit(c),
            }
        }
        run_next = match connector {
            Connector::Then => true,
            Connector::And => last == 0,
            Connector::Or => last != 0,
        };
    }
    Flow::Code(last)
}

/// How a statement connects to the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connector {
    /// `;` or newline or end.
    Then,
    /// `&&`.
    And,
    /// `||`.
    Or,
}

/// Splits a script into statements of words, expanding variables.
pub fn parse(
    script: &str,
    var: &dyn Fn(&str) -> Option<String>,
    last: i32,
) -> Result<Vec<(Vec<String>, Connector)>, String> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = script.chars().peekable();
    let end_statement =
        |words: &mut Vec<String>, out: &mut Vec<(Vec<String>, Connector)>, c: Connector| {
            if !words.is_empty() {
                out.push((std::mem::take(words), c));
            }
        };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            ';' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                end_statement(&mut words, &mut out, Connector::Then);
            }
            '&' | '|' if chars.peek() == Some(&c) => {
                chars.next();
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                if words.is_empty() {
                    return Err(format!("unexpected '{c}{c}'"));
                }
                end_statement(
                    &mut words,
                    &mut out,
                    if c == '&' {
                        Connector::And
                    } else {
                        Connector::Or
                    },
                );
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$')) => word.push(ch),
                            Some(ch) => {
                                word.push('\\');
                                word.push(ch);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some('$') => expand(&mut chars, &mut word, var, last),
                        Some(ch) => word.push(ch),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(ch) = chars.next() {
                    word.push(ch);
                }
            }
            '$' => {
                in_word = true;
                expand(&mut chars, &mut word, var, last);
            }
            ch => {
                in_word = true;
                word.push(ch);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    end_statement(&mut words, &mut out, Connector::Then);
    Ok(out)
}

fn expand(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    word: &mut String,
    var: &dyn Fn(&str) -> Option<String>,
    last: i32,
) {
    match chars.peek().copied() {
        Some('?') => {
            chars.next();
            word.push_str(&last.to_string());
        }
        Some('{') => {
            chars.next();
            let mut name = String::new();
            for ch in chars.by_ref() {
                if ch == '}' {
                    break;
                }
                name.push(ch);
            }
            word.push_str(&var(&name).unwrap_or_default());
        }
        Some(ch) if ch.is_ascii_alphabetic() || ch == '_' => {
            let mut name = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_ascii_alphanumeric() || ch == '_' {
                    name.push(ch);
                    chars.next();
                } else {
                    break;
                }
            }
            word.push_str(&var(&name).unwrap_or_default());
        }
        _ => word.push('$'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(n: &str) -> Option<String> {
        (n == "GREETING").then(|| "hello world".to_string())
    }

    fn words(s: &str) -> Vec<(Vec<String>, Connector)> {
        parse(s, &vars, 7).unwrap()
    }

    #[test]
    fn splits_statements_and_expands() {
        let w = words("echo \"$GREETING\" 'x $GREETING'; exit 3 && echo ${GREETING} $? || true");
        assert_eq!(w[0].0, vec!["echo", "hello world", "x $GREETING"]);
        assert_eq!(w[0].1, Connector::Then);
        assert_eq!(
            w[1],
            (vec!["exit".to_string(), "3".to_string()], Connector::And)
        );
        assert_eq!(w[2].0, vec!["echo", "hello world", "7"]);
        assert_eq!(w[2].1, Connector::Or);
        assert_eq!(w[3].0, vec!["true"]);
    }

    #[test]
    fn unquoted_variable_is_one_word_here() {
        assert_eq!(words("echo $GREETING")[0].0, vec!["echo", "hello world"]);
    }

    #[test]
    fn syntax_errors() {
        assert!(parse("echo 'open", &vars, 0).is_err());
        assert!(parse("&& echo", &vars, 0).is_err());
    }
}
