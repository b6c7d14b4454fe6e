//! `ffq` (or `ffq repl`): an interactive SQL shell.
//!
//! On a terminal it reads lines with line editing and history (kept in
//! `$HOME/.ffq_history`); otherwise it reads standard input without
//! prompts, so `echo 'select 1;' | ffq` runs a script. Statements end with
//! a `;` outside string literals, quoted identifiers and comments, and may
//! span lines; lines starting with `\` are meta commands (`\?` lists them).
//! An error in a statement is printed as `error: ...` and the shell goes
//! on.

use std::io::{BufRead, BufWriter, IsTerminal, Stdout, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use clap::Args;
use ffq::format::{io_error, OutputFormat, ResultWriter};
use ffq::Engine;
use rustyline::error::ReadlineError;
use rustyline::{Config, DefaultEditor};
use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Location, Token, Tokenizer};

use super::sql::{build_engine, elapsed_line, run_statement, EngineArgs, Printed};
use super::CliError;

const PROMPT: &str = "ffq> ";
const CONTINUATION: &str = "  -> ";
const HISTORY_FILE: &str = ".ffq_history";

const HELP: &str = "\
\\d          list the tables and views
\\d NAME     describe table or view NAME (its columns)
\\timing     toggle printing the time each statement takes (on at start)
\\q          quit (or Ctrl-D)
\\?          list these commands
SQL statements end with ';' and may span several lines; Ctrl-C clears the input.
";

#[derive(Debug, Args)]
pub struct ReplArgs {
    #[command(flatten)]
    engine: EngineArgs,
}

pub fn run(args: ReplArgs) -> Result<(), CliError> {
    let (runtime, engine) = build_engine(&args.engine)?;
    let interactive = std::io::stdin().is_terminal();
    let mut session = Session {
        runtime,
        engine,
        format: args.engine.output_format(),
        timing: true,
        // A script's results are separated by blank lines, as `ffq sql`'s.
        separate: !interactive,
        printed: false,
        out: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
    };
    let result = if interactive {
        let mut input = Terminal::new()?;
        println!(
            "ffq {}: type \\? for help, \\q to quit.",
            env!("CARGO_PKG_VERSION")
        );
        read_eval_print(&mut session, &mut input, false)
    } else {
        let mut input = Piped {
            stdin: std::io::stdin().lock(),
        };
        read_eval_print(&mut session, &mut input, true)
    };
    result?;
    session
        .out
        .flush()
        .map_err(|e| CliError::Engine(io_error(e)))
}

/// The loop: reads lines, runs meta commands and complete statements.
/// `run_rest`: at the end of the input, run an unfinished last statement
/// (a script may omit the final `;`).
fn read_eval_print(
    session: &mut Session,
    input: &mut dyn LineSource,
    run_rest: bool,
) -> Result<(), CliError> {
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            PROMPT
        } else {
            CONTINUATION
        };
        let line = match input.read(prompt)? {
            Input::Line(line) => line,
            Input::Interrupted => {
                pending.clear();
                continue;
            }
            Input::Eof => break,
        };
        input.remember(&line);
        if let Some(meta) = line.trim().strip_prefix('\\') {
            match session.meta(meta)? {
                Flow::Continue => continue,
                Flow::Quit => return Ok(()),
            }
        }
        if !pending.is_empty() {
            pending.push('\n');
        }
        pending.push_str(&line);
        let (statements, rest) = take_statements(&pending);
        pending = rest;
        for statement in statements {
            session.run_sql(&statement, true)?;
        }
    }
    if run_rest && !pending.trim().is_empty() {
        // The `;` on a line of its own ends a trailing `--` comment too.
        let (statements, _) = take_statements(&format!("{pending}\n;"));
        if statements.is_empty() {
            // Does not tokenize (e.g. an unterminated string): the engine
            // reports the error.
            session.run_sql(&pending, true)?;
        }
        for statement in statements {
            session.run_sql(&statement, true)?;
        }
    }
    Ok(())
}

/// Splits the statements that a top-level `;` ends off the front of `text`
/// (strings, quoted identifiers and comments are single tokens, so a `;`
/// in them does not end a statement). Returns them, without their `;`, and
/// the unfinished rest (empty when only whitespace and comments remain).
fn take_statements(text: &str) -> (Vec<String>, String) {
    match split_points(text) {
        Ok((statements, rest)) => (statements, rest),
        Err(unfinished) => {
            // Text that does not tokenize: wait for the end of an
            // unterminated string, identifier or comment; otherwise a line
            // ending with `;` submits it, to get the engine's error.
            if !unfinished && text.trim_end().ends_with(';') {
                (vec![text.trim().to_string()], String::new())
            } else {
                (Vec::new(), text.to_string())
            }
        }
    }
}

/// [`take_statements`] on text that tokenizes; `Err(unfinished)` when it
/// does not, `unfinished` when more text could make it tokenize.
fn split_points(text: &str) -> Result<(Vec<String>, String), bool> {
    let tokens = Tokenizer::new(&GenericDialect {}, text)
        .tokenize_with_location()
        .map_err(|e| e.message.contains("Unterminated") || e.message.contains("EOF"))?;
    // Byte offset of each line start; columns count characters.
    let mut line_starts = vec![0usize];
    line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    let offset = |loc: Location| -> Option<usize> {
        let line = usize::try_from(loc.line).ok()?.checked_sub(1)?;
        let col = usize::try_from(loc.column).ok()?.checked_sub(1)?;
        let start = *line_starts.get(line)?;
        let rest = text.get(start..)?;
        Some(match rest.char_indices().nth(col) {
            Some((i, _)) => start + i,
            None => text.len(),
        })
    };
    let mut statements = Vec::new();
    let mut start = 0;
    let mut content = false;
    for t in &tokens {
        match &t.token {
            Token::SemiColon => {
                let end = offset(t.span.start)
                    .filter(|&end| end >= start && text[end..].starts_with(';'))
                    .ok_or(false)?;
                if content {
                    statements.push(text[start..end].trim().to_string());
                }
                start = end + 1;
                content = false;
            }
            Token::Whitespace(_) | Token::EOF => {}
            _ => content = true,
        }
    }
    let rest = if content {
        text[start..].to_string()
    } else {
        String::new()
    };
    Ok((statements, rest))
}

/// What the loop does after a meta command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

struct Session {
    runtime: tokio::runtime::Runtime,
    engine: Engine,
    format: OutputFormat,
    /// Print the time each statement takes (`\timing`).
    timing: bool,
    /// Separate results with a blank line (as `ffq sql`).
    separate: bool,
    /// A result was printed.
    printed: bool,
    out: BufWriter<Stdout>,
}

impl Session {
    /// Runs one statement and prints its result, and with `timed` and
    /// `\timing` on, the time it took. An error is printed and the shell
    /// goes on, except a closed standard output, which ends it.
    fn run_sql(&mut self, sql: &str, timed: bool) -> Result<(), CliError> {
        let start = Instant::now();
        let separate = self.separate && self.printed;
        let result = self.runtime.block_on(run_statement(
            &self.engine,
            sql,
            self.format,
            super::sql::Explain::No,
            &mut self.out,
            separate,
        ));
        match result {
            Ok(printed) => {
                let rows = match printed {
                    Printed::Rows(rows) => {
                        self.printed = true;
                        Some(rows)
                    }
                    Printed::Plans => {
                        self.printed = true;
                        None
                    }
                    Printed::Nothing => None,
                };
                if timed && self.timing {
                    eprintln!("{}", elapsed_line(rows, start));
                }
                Ok(())
            }
            Err(e) => self.report(e),
        }
    }

    /// Prints `error: ...` for `e`; a closed standard output ends the
    /// shell (quietly: see `main`).
    fn report(&mut self, e: CliError) -> Result<(), CliError> {
        if e.is_broken_pipe() {
            return Err(e);
        }
        // What was written before the error goes before the message.
        if let Err(e) = self.out.flush() {
            return Err(CliError::Engine(io_error(e)));
        }
        eprintln!("error: {}", e.one_line());
        Ok(())
    }

    /// Runs meta command `\command` (`command` without the `\`).
    fn meta(&mut self, command: &str) -> Result<Flow, CliError> {
        let command = command.trim().trim_end_matches(';').trim_end();
        let (name, arg) = match command.split_once(char::is_whitespace) {
            Some((name, arg)) => (name, arg.trim()),
            None => (command, ""),
        };
        let result = match (name, arg) {
            ("q", "") => return Ok(Flow::Quit),
            ("?", "") => self.print_text(HELP),
            ("timing", "") => {
                self.timing = !self.timing;
                self.print_timing();
                Ok(())
            }
            ("timing", "on" | "off") => {
                self.timing = arg == "on";
                self.print_timing();
                Ok(())
            }
            ("timing", _) => Err(CliError::msg(format!(
                "\\timing takes on, off or nothing, not '{arg}'"
            ))),
            ("d", "") => self.list_tables(),
            ("d", name) => self.describe(name),
            ("q" | "?", _) => Err(CliError::msg(format!("\\{name} takes no argument"))),
            _ => Err(CliError::msg(format!(
                "unknown command \\{name}; \\? lists the commands"
            ))),
        };
        match result {
            Ok(()) => Ok(Flow::Continue),
            Err(e) => self.report(e).map(|()| Flow::Continue),
        }
    }

    fn print_timing(&self) {
        let state = if self.timing { "on" } else { "off" };
        eprintln!("timing is {state}");
    }

    fn print_text(&mut self, text: &str) -> Result<(), CliError> {
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(|e| CliError::Engine(io_error(e)))
    }

    /// `\d`: name, kind and number of columns of each table and view.
    fn list_tables(&mut self) -> Result<(), CliError> {
        let engine = &self.engine;
        let batch = self.runtime.block_on(async {
            let objects = catalog_objects(engine).await?;
            let mut columns = Vec::with_capacity(objects.len());
            for (name, _) in &objects {
                columns.push(column_count(engine, name).await?);
            }
            let schema = Arc::new(Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("kind", DataType::Utf8, false),
                Field::new("columns", DataType::UInt64, false),
            ]));
            RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(StringArray::from_iter_values(
                        objects.iter().map(|(name, _)| name.as_str()),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        objects.iter().map(|(_, kind)| kind.name()),
                    )),
                    Arc::new(UInt64Array::from(columns)),
                ],
            )
            .map_err(|e| CliError::Engine(e.into()))
        })?;
        self.print_batch(&batch)
    }

    /// `\d NAME`: the columns of table or view NAME.
    fn describe(&mut self, name: &str) -> Result<(), CliError> {
        let objects = self.runtime.block_on(catalog_objects(&self.engine))?;
        let names: Vec<&str> = objects.iter().map(|(n, _)| n.as_str()).collect();
        let Some(found) = resolve_name(&names, name) else {
            return Err(CliError::msg(format!(
                "no table or view named {name}; \\d lists them"
            )));
        };
        let sql = format!("DESCRIBE {}", quote_ident(&found));
        self.run_sql(&sql, false)
    }

    fn print_batch(&mut self, batch: &RecordBatch) -> Result<(), CliError> {
        if self.separate && self.printed && self.format != OutputFormat::Json {
            writeln!(self.out).map_err(io_error)?;
        }
        self.printed = true;
        let mut writer = ResultWriter::new(self.format, batch.schema(), &mut self.out);
        writer.write(batch)?;
        writer.finish()?;
        self.out.flush().map_err(io_error)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Table,
    View,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Table => "table",
            Kind::View => "view",
        }
    }
}

/// The tables and views, sorted by name (from `SHOW TABLES`).
async fn catalog_objects(engine: &Engine) -> Result<Vec<(String, Kind)>, CliError> {
    let batches = engine.sql("SHOW TABLES").await?.collect().await?;
    let mut objects = Vec::new();
    for batch in &batches {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| CliError::msg(format!("SHOW TABLES has no text column {name}")))
        };
        let names = column("table_name")?;
        let types = column("table_type")?;
        for i in 0..batch.num_rows() {
            if names.is_null(i) {
                continue;
            }
            let kind = if types.value(i).eq_ignore_ascii_case("VIEW") {
                Kind::View
            } else {
                Kind::Table
            };
            objects.push((names.value(i).to_string(), kind));
        }
    }
    Ok(objects)
}

/// The number of columns of table or view `name`.
async fn column_count(engine: &Engine, name: &str) -> Result<u64, CliError> {
    if let Some(schema) = engine.table_schema(name) {
        return Ok(schema.fields().len() as u64);
    }
    // A view: one row per column.
    let sql = format!("DESCRIBE {}", quote_ident(name));
    let batches = engine.sql(&sql).await?.collect().await?;
    Ok(batches.iter().map(|b| b.num_rows() as u64).sum())
}

/// The catalog name that `name` means: `"Exact"` quoted, otherwise itself
/// or (as SQL folds unquoted names) its lower case.
fn resolve_name(names: &[&str], name: &str) -> Option<String> {
    if let Some(inner) = name
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .filter(|n| !n.is_empty())
    {
        let inner = inner.replace("\"\"", "\"");
        return names.contains(&inner.as_str()).then_some(inner);
    }
    if names.contains(&name) {
        return Some(name.to_string());
    }
    let lower = name.to_lowercase();
    names.contains(&lower.as_str()).then_some(lower)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

// ---------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------

enum Input {
    Line(String),
    /// Ctrl-C: the current input is dropped.
    Interrupted,
    Eof,
}

trait LineSource {
    fn read(&mut self, prompt: &str) -> Result<Input, CliError>;
    /// Adds a line to the history.
    fn remember(&mut self, _line: &str) {}
}

/// A terminal: line editing and history.
struct Terminal {
    editor: DefaultEditor,
    history: Option<PathBuf>,
}

impl Terminal {
    fn new() -> Result<Self, CliError> {
        let config = Config::builder().auto_add_history(false).build();
        let mut editor = DefaultEditor::with_config(config)
            .map_err(|e| CliError::msg(format!("cannot set up the terminal: {e}")))?;
        let history = std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .map(|home| PathBuf::from(home).join(HISTORY_FILE));
        if let Some(path) = &history {
            // A missing or unreadable history is no reason to stop.
            let _ = editor.load_history(path);
        }
        Ok(Terminal { editor, history })
    }
}

impl LineSource for Terminal {
    fn read(&mut self, prompt: &str) -> Result<Input, CliError> {
        match self.editor.readline(prompt) {
            Ok(line) => Ok(Input::Line(line)),
            Err(ReadlineError::Interrupted) => Ok(Input::Interrupted),
            Err(ReadlineError::Eof) => Ok(Input::Eof),
            Err(e) => Err(CliError::msg(format!("cannot read the input: {e}"))),
        }
    }

    fn remember(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        if let Ok(true) = self.editor.add_history_entry(line) {
            if let Some(path) = &self.history {
                let _ = self.editor.append_history(path);
            }
        }
    }
}

/// Standard input that is not a terminal: a script.
struct Piped {
    stdin: std::io::StdinLock<'static>,
}

impl LineSource for Piped {
    fn read(&mut self, _prompt: &str) -> Result<Input, CliError> {
        let mut bytes = Vec::new();
        let n = self
            .stdin
            .read_until(b'\n', &mut bytes)
            .map_err(|e| CliError::msg(format!("cannot read standard input: {e}")))?;
        if n == 0 {
            return Ok(Input::Eof);
        }
        let mut line = String::from_utf8_lossy(&bytes).into_owned();
        if line.ends_with('\n') {
            line.pop();
            if line.ends_with('\r') {
                line.pop();
            }
        }
        Ok(Input::Line(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(text: &str) -> (Vec<String>, String) {
        take_statements(text)
    }

    #[test]
    fn splits_complete_statements() {
        assert_eq!(take("select 1"), (vec![], "select 1".to_string()));
        assert_eq!(
            take("select 1;"),
            (vec!["select 1".to_string()], String::new())
        );
        assert_eq!(
            take("select 1; select 2;\nselect\n 3"),
            (
                vec!["select 1".to_string(), "select 2".to_string()],
                "\nselect\n 3".to_string()
            )
        );
        assert_eq!(take("  ;; -- note"), (vec![], String::new()));
        assert_eq!(
            take("select 1; -- done"),
            (vec!["select 1".to_string()], String::new())
        );
    }

    #[test]
    fn semicolons_in_strings_and_comments() {
        assert_eq!(take("select 'a;b"), (vec![], "select 'a;b".to_string()));
        assert_eq!(
            take("select 'a;b';"),
            (vec!["select 'a;b'".to_string()], String::new())
        );
        assert_eq!(
            take("select 1 -- x;\n"),
            (vec![], "select 1 -- x;\n".to_string())
        );
        assert_eq!(
            take("select /* ; */ \"a;\" from t; select 'é;'"),
            (
                vec!["select /* ; */ \"a;\" from t".to_string()],
                " select 'é;'".to_string()
            )
        );
        assert_eq!(take("select /* ;"), (vec![], "select /* ;".to_string()));
    }

    #[test]
    fn resolves_names() {
        let names = ["lineitem", "Mixed"];
        assert_eq!(
            resolve_name(&names, "LINEITEM").as_deref(),
            Some("lineitem")
        );
        assert_eq!(resolve_name(&names, "Mixed").as_deref(), Some("Mixed"));
        assert_eq!(resolve_name(&names, "\"Mixed\"").as_deref(), Some("Mixed"));
        assert_eq!(resolve_name(&names, "\"LINEITEM\""), None);
        assert_eq!(resolve_name(&names, "nope"), None);
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
