//! The account and call tasks in virtual time: a real engine, a real WebSocket on 127.0.0.1,
//! and a scripted SIP peer, with tokio's clock paused so that hours of registrar life and
//! half-minute protocol timers pass in milliseconds. Each test measures, on that clock, what a
//! person using the account would notice: when it reconnects, when it re-registers, when a call
//! gives up and what history says about it.

mod account;
mod calls;
mod support;
