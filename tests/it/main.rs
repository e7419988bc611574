//! clinvoker's integration tests: one binary, one module per concern. Servers start in-process on
//! port 0 (or as the real binary where signals matter).

mod admin;
mod binary;
mod codex;
mod codex_tools;
mod dispatch;
mod edge;
mod fake_cli;
mod fakes;
mod gemini;
mod integrity;
mod limits;
mod native;
mod openai;
mod parking;
mod parking_backends;
mod real_cli;
mod real_codex;
mod real_codex_tools;
mod real_gemini;
mod real_parking;
mod sessions;
mod sessions_disk;
mod stop;
mod structured;
mod support;
mod tools;
