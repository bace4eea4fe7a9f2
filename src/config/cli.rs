//! Command-line parsing with Python argparse's semantics, driven by the settings table:
//! `--opt value`, `--opt=value`, `-w4`, clustered short flags, unambiguous long-option
//! prefixes, `store_true`, `store_const`, `append`, `nargs='?'`, negative numbers as
//! values, `--`, and at most one positional APP_MODULE.
//!
//! Used for both argv and `GUNICORN_CMD_ARGS`. This module only turns strings into raw
//! per-setting values and formats argparse's own messages; validation happens later, on
//! the values, through the same validators as the config file.

use super::pytext::{parse_auto_int, parse_py_int, py_repr};
use super::settings::{Action, ArgType, Setting, TABLE};

/// A raw command-line value, after argparse's `type=` conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CliValue {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
}

/// Successfully parsed arguments.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    /// Options given, in table order (the order Gunicorn applies them).
    pub(crate) values: Vec<(&'static Setting, CliValue)>,
    /// The positional arguments (at most one is accepted).
    pub(crate) positionals: Vec<String>,
}

impl Parsed {
    pub(crate) fn get(&self, name: &str) -> Option<&CliValue> {
        self.values
            .iter()
            .find(|(s, _)| s.name == name)
            .map(|(_, v)| v)
    }
}

/// What argparse would do instead of returning values.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    Help,
    Version,
    /// `usage` + `prog: error: <message>`, exit 2.
    Error(String),
}

#[derive(Clone, Copy)]
enum Target {
    Help,
    Version,
    Setting(&'static Setting),
}

/// argparse's view of one argument string.
enum Class {
    Positional,
    /// An option-looking string; `target` is `None` when no option matches it.
    Opt {
        target: Option<Target>,
        flag: String,
        explicit: Option<String>,
    },
}

fn registry() -> Vec<(&'static str, Target)> {
    let mut out = vec![
        ("-h", Target::Help),
        ("--help", Target::Help),
        ("-v", Target::Version),
        ("--version", Target::Version),
    ];
    for row in TABLE {
        for flag in row.cli {
            out.push((flag, Target::Setting(row)));
        }
    }
    out
}

fn lookup(reg: &[(&'static str, Target)], flag: &str) -> Option<Target> {
    reg.iter().find(|(f, _)| *f == flag).map(|(_, t)| *t)
}

fn is_negative_number(arg: &str) -> bool {
    let Some(rest) = arg.strip_prefix('-') else {
        return false;
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if all_digits(rest) {
        return true;
    }
    match rest.split_once('.') {
        Some((int, frac)) => (int.is_empty() || all_digits(int)) && all_digits(frac),
        None => false,
    }
}

/// argparse's `_parse_optional` (with `allow_abbrev`), including its ambiguity error.
fn classify(reg: &[(&'static str, Target)], arg: &str) -> Result<Class, String> {
    if !arg.starts_with('-') || arg.len() == 1 {
        return Ok(Class::Positional);
    }
    let opt = |target, flag: &str, explicit: Option<&str>| Class::Opt {
        target,
        flag: flag.to_string(),
        explicit: explicit.map(str::to_string),
    };
    if let Some(t) = lookup(reg, arg) {
        return Ok(opt(Some(t), arg, None));
    }
    if let Some((flag, value)) = arg.split_once('=') {
        if let Some(t) = lookup(reg, flag) {
            return Ok(opt(Some(t), flag, Some(value)));
        }
    }
    let mut matches: Vec<(&'static str, Target, Option<String>)> = Vec::new();
    if arg.starts_with("--") {
        let (prefix, explicit) = match arg.split_once('=') {
            Some((p, v)) => (p, Some(v.to_string())),
            None => (arg, None),
        };
        for (flag, t) in reg {
            if flag.starts_with(prefix) {
                matches.push((flag, *t, explicit.clone()));
            }
        }
    } else {
        let short = &arg[..arg.char_indices().nth(2).map_or(arg.len(), |(i, _)| i)];
        let rest = &arg[short.len()..];
        for (flag, t) in reg {
            if *flag == short {
                matches.push((flag, *t, Some(rest.to_string())));
            } else if flag.starts_with(arg) {
                matches.push((flag, *t, None));
            }
        }
    }
    match matches.len() {
        0 => {}
        1 => {
            let (flag, t, explicit) = matches.remove(0);
            return Ok(opt(Some(t), flag, explicit.as_deref()));
        }
        _ => {
            let names: Vec<&str> = matches.iter().map(|(f, _, _)| *f).collect();
            return Err(format!(
                "ambiguous option: {arg} could match {}",
                names.join(", ")
            ));
        }
    }
    if is_negative_number(arg) || arg.contains(' ') {
        return Ok(Class::Positional);
    }
    Ok(opt(None, arg, None))
}

/// argparse's name for an option in messages: all its flags joined by `/`.
fn arg_name(target: Target) -> String {
    match target {
        Target::Help => "-h/--help".to_string(),
        Target::Version => "-v/--version".to_string(),
        Target::Setting(s) => s.cli.join("/"),
    }
}

fn takes_value(target: Target) -> bool {
    match target {
        Target::Help | Target::Version => false,
        Target::Setting(s) => !matches!(s.action, Action::StoreTrue | Action::StoreConst(_)),
    }
}

/// Convert and record one occurrence of an option.
fn take(
    values: &mut Vec<(&'static Setting, CliValue)>,
    row: &'static Setting,
    arg: Option<String>,
) -> Result<(), String> {
    let invalid = |ty: &str, v: &str| {
        format!(
            "argument {}: invalid {ty} value: {}",
            row.cli.join("/"),
            py_repr(v)
        )
    };
    let value = match (row.action, arg) {
        (Action::StoreTrue, _) => CliValue::Bool(true),
        (Action::StoreConst(c), _) => CliValue::Bool(c),
        (Action::Optional(c), None) => CliValue::Str(c.to_string()),
        (Action::Store(ArgType::Int), Some(v)) => {
            CliValue::Int(parse_py_int(&v, 10).map_err(|_| invalid("int", &v))?)
        }
        (Action::Store(ArgType::AutoInt), Some(v)) => {
            CliValue::Int(parse_auto_int(&v).map_err(|_| invalid("auto_int", &v))?)
        }
        (Action::Append, Some(v)) => {
            if let Some((_, CliValue::List(items))) =
                values.iter_mut().find(|(s, _)| s.name == row.name)
            {
                items.push(v);
                return Ok(());
            }
            CliValue::List(vec![v])
        }
        (_, Some(v)) => CliValue::Str(v),
        (_, None) => {
            return Err(format!(
                "argument {}: expected one argument",
                row.cli.join("/")
            ))
        }
    };
    match values.iter_mut().find(|(s, _)| s.name == row.name) {
        Some(slot) => slot.1 = value,
        None => values.push((row, value)),
    }
    Ok(())
}

/// Parse arguments (without the program name) as Gunicorn's argparse parser would.
pub(crate) fn parse(args: &[String]) -> Result<Parsed, Stop> {
    let reg = registry();
    // argparse classifies every string before acting on any, so an ambiguous prefix fails
    // even when `-h` comes first.
    let mut classes = Vec::with_capacity(args.len());
    let mut after_dashdash = false;
    for arg in args {
        if after_dashdash {
            classes.push(Class::Positional);
            continue;
        }
        if arg == "--" {
            after_dashdash = true;
            classes.push(Class::Positional);
            continue;
        }
        classes.push(classify(&reg, arg).map_err(Stop::Error)?);
    }

    let mut values: Vec<(&'static Setting, CliValue)> = Vec::new();
    let mut positionals: Vec<String> = Vec::new();
    let mut positional_taken = false;
    let mut extras: Vec<String> = Vec::new();
    let mut seen_dashdash = false;
    let mut i = 0;
    while i < args.len() {
        match &classes[i] {
            Class::Positional => {
                // The `nargs='*'` positional swallows the first run of positionals; later
                // runs are "unrecognized arguments", as in argparse.
                let start = i;
                while i < args.len() && matches!(classes[i], Class::Positional) {
                    i += 1;
                }
                for arg in &args[start..i] {
                    if arg == "--" && !seen_dashdash {
                        seen_dashdash = true;
                        continue;
                    }
                    if positional_taken {
                        extras.push(arg.clone());
                    } else {
                        positionals.push(arg.clone());
                    }
                }
                positional_taken = true;
            }
            Class::Opt { target: None, .. } => {
                extras.push(args[i].clone());
                i += 1;
            }
            Class::Opt {
                target: Some(target),
                flag,
                explicit,
            } => {
                let (mut target, mut flag, mut explicit) =
                    (*target, flag.clone(), explicit.clone());
                i += 1;
                loop {
                    if !takes_value(target) {
                        match explicit.take() {
                            None => {}
                            // `-DR` is `-D -R`; `-Dw4` is `-D -w 4`.
                            Some(rest) if !flag.starts_with("--") && !rest.is_empty() => {
                                let mut chars = rest.chars();
                                let next = format!("-{}", chars.next().unwrap_or('-'));
                                let Some(next_target) = lookup(&reg, &next) else {
                                    return Err(Stop::Error(format!(
                                        "argument {}: ignored explicit argument {}",
                                        arg_name(target),
                                        py_repr(&rest)
                                    )));
                                };
                                act(&mut values, target, None)?;
                                let remaining: String = chars.collect();
                                explicit = (!remaining.is_empty()).then_some(remaining);
                                target = next_target;
                                flag = next;
                                continue;
                            }
                            Some(rest) => {
                                return Err(Stop::Error(format!(
                                    "argument {}: ignored explicit argument {}",
                                    arg_name(target),
                                    py_repr(&rest)
                                )));
                            }
                        }
                        act(&mut values, target, None)?;
                        break;
                    }
                    let value = match explicit.take() {
                        Some(v) => Some(v),
                        None if i < args.len()
                            && matches!(classes[i], Class::Positional)
                            && args[i] != "--" =>
                        {
                            i += 1;
                            Some(args[i - 1].clone())
                        }
                        None => None,
                    };
                    act(&mut values, target, value)?;
                    break;
                }
            }
        }
    }
    if positionals.len() > 1 {
        extras.extend(positionals.drain(1..));
    }
    if !extras.is_empty() {
        return Err(Stop::Error(format!(
            "unrecognized arguments: {}",
            extras.join(" ")
        )));
    }
    values.sort_by_key(|(row, _)| TABLE.iter().position(|r| r.name == row.name));
    Ok(Parsed {
        values,
        positionals,
    })
}

fn act(
    values: &mut Vec<(&'static Setting, CliValue)>,
    target: Target,
    value: Option<String>,
) -> Result<(), Stop> {
    match target {
        Target::Help => Err(Stop::Help),
        Target::Version => Err(Stop::Version),
        Target::Setting(row) => take(values, row, value).map_err(Stop::Error),
    }
}
